"""What ``SlemPipelineWorkChain`` checks before anything runs, beyond its steps' own validators: the
structures against the pseudopotentials and each other, the shared MD supercell, spin, and the transfer
splits (a held-out structure or composition, larger cells).
"""

from __future__ import annotations

from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from aiida_slem.calcjobs.checks import check_spin, check_spin_orbit, check_structure_and_pseudos

from .composition import kind_problem
from .dimensionality import sheet_problem
from .magnetism import magnetization_problem
from .splits import larger_cells_problem, transfer_problem


def _pw_parameters(inputs: dict) -> list[dict]:
    """The pw.x parameters of the MD and of the SCFs, where the inputs hold them."""
    found = []
    for section, path in (("md", ("md", "pw")), ("dataset", ("operator", "scf", "pw"))):
        namespace = inputs.get(section, {})
        for key in path:
            namespace = namespace.get(key, {})
        if "parameters" in namespace:
            found.append(namespace["parameters"].get_dict())
    return found


def structure_compositions(structures) -> dict[str, dict[str, int]]:
    """{label: {element: count}}: what the transfer splits are decided on."""
    return {label: structure.get_composition() for label, structure in structures.items()}


def validate_inputs(inputs: dict, _) -> str | None:
    structures = inputs.get("structures", {})
    if not structures:
        return "give at least one structure in 'structures'"
    pseudos = dict(inputs["md"]["md"]["pw"]["pseudos"])
    error = kind_problem(structures)
    if error:
        return error
    for label, structure in sorted(structures.items()):
        error = check_structure_and_pseudos(structure, pseudos)
        if error:
            return f"structure {label}: {error}"
        # every structure shares the md section's supercell and k-mesh, made for the first one
        md = inputs["md"]
        repetitions = md["supercell"].get_list() if "supercell" in md else [1, 1, 1]
        error = sheet_problem(structure, repetitions, md.get("md", {}).get("kpoints"))
        if error:
            return (
                f"structure {label}: {error}. One pipeline shares one MD supercell and k-mesh: run sheets "
                "and bulk crystals in separate pipelines"
            )
    for parameters in _pw_parameters(inputs):
        error = check_spin(parameters) or check_spin_orbit(parameters, pseudos)
        if error:
            return error
    hold_out = inputs.get("hold_out_structure")
    elements = inputs.get("hold_out_elements")
    error = transfer_problem(
        structure_compositions(structures),
        None if hold_out is None else hold_out.value,
        None if elements is None else elements.get_list(),
    )
    if error:
        return error
    if "larger_cells" in inputs:
        return larger_cells_problem(inputs["larger_cells"].get_list(), inputs["md"])
    return None


def with_scf_settings(
    overrides: dict, electronic_type: str | None, magnetization: dict | None, spin_orbit: bool = False
) -> dict:
    """``overrides`` with the settings every pw.x run of a pipeline shares, at the top level (where
    'aiida-slem retrain' reads them back) and in the MD and SCF sections: ``electronic_type``,
    ``magnetization`` (which implies the metal's smeared occupations unless a type is given) and
    ``spin_orbit``."""
    overrides = dict(overrides)
    shared = {}
    if magnetization and spin_orbit:
        raise ValueError(
            "magnetization and spin_orbit together ask for a magnetic spin-orbit run, which slem does not "
            "project (its spinor H would break time reversal): choose one"
        )
    if spin_orbit:
        shared["spin_orbit"] = True
    if magnetization and not electronic_type:
        electronic_type = "metal"  # nspin=2 needs smeared occupations (calcjobs/checks.check_spin)
    if electronic_type:
        shared["electronic_type"] = electronic_type
    if magnetization:
        problem = magnetization_problem(dict(magnetization))
        if problem:
            raise ValueError(problem)
        shared["magnetization"] = dict(magnetization)
    overrides.update(shared)
    overrides["md"] = recursive_merge(overrides.get("md") or {}, shared)
    overrides["dataset"] = recursive_merge(overrides.get("dataset") or {}, {"operator": shared})
    if spin_orbit:
        # shells whose splitting the j-averaged zetas lose get their j = l - 1/2 function (Bi 6p: Bi2Se3's
        # Gamma gap 215 -> 331 meV, pw.x 350); a j_resolved the user gives wins
        basis = overrides["dataset"].get("basis_parameters") or {}
        overrides["dataset"]["basis_parameters"] = {"j_resolved": "auto", **basis}
    return overrides
