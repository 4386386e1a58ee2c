"""Collinear magnetism in the protocols: ``magnetization`` ({element: starting magnetisation}) turns every
pw.x run of a pipeline (MD, SCFs and the validation's bands runs, which copy the SCF's parameters) into a
spin-polarised nspin=2 run, and the training into one head per spin channel.

pw.x's starting_magnetization is the fraction of an atom's valence electrons that start polarised, in
[-1, 1]; aiida-quantumespresso maps the {kind: value} form onto pw.x's per-species indices.
"""

from __future__ import annotations

from ase.data import chemical_symbols

from slem.data.operators import SPIN_CHANNELS, spin_orbit_names


def magnetization_problem(magnetization: dict) -> str | None:
    for element, value in sorted(magnetization.items()):
        if element not in chemical_symbols[1:]:
            return f"magnetization names {element!r}, which is not an element symbol (e.g. {{'Fe': 0.4}})"
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not -1.0 <= value <= 1.0:
            return (
                f"magnetization of {element} is {value!r}; pw.x's starting_magnetization is a number in "
                "[-1, 1] (the polarised fraction of the valence electrons), e.g. 0.4 for Fe"
            )
    return None


def spin_parameters(magnetization: dict, structure) -> dict:
    """SYSTEM entries of an nspin=2 run of ``structure``: a starting magnetisation for each of its kinds whose
    element ``magnetization`` names (0 for the others)."""
    problem = magnetization_problem(magnetization)
    if problem:
        raise ValueError(problem)
    starting = {kind.name: float(magnetization.get(kind.symbol, 0.0)) for kind in structure.kinds}
    if not any(starting.values()):
        raise ValueError(
            f"magnetization {magnetization} gives none of the structure's elements "
            f"({sorted(structure.get_symbols_set())}) a nonzero starting magnetisation; nspin=2 needs one"
        )
    return {"nspin": 2, "starting_magnetization": starting}


def spin_orbit_operators(operators: list[str]) -> list[str]:
    """The training operators of a spin-orbit dataset: H's spin-orbit parts join H (once)."""
    wanted = spin_orbit_names("H") if "H" in operators else []
    return list(operators) + [name for name in wanted if name not in operators]


def spin_operators(operators: list[str]) -> list[str]:
    """The training operators of a spin-polarised dataset: H -> H_up, H_down; D -> D_up, D_down; S stays."""
    out = []
    for name in operators:
        out.extend([f"{name}_{c}" for c in SPIN_CHANNELS] if name in ("H", "D") else [name])
    return out
