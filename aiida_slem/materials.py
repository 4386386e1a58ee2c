"""Built-in structures of ``submit_pipeline.py --material``: small cells (<= 12 atoms, so the fast
protocol's MD runs on 2 cores) at experimental lattice constants (PBE ones are within 1-2 %).

Monolayers carry 15 Angstrom of vacuum and pbc all True: pw.x and the projection need 3D periodicity
(``calcjobs/checks.py`` refuses other pbc), and the vacuum rule of ``slem.data.dimensionality`` (an
empty slab >= 10 Angstrom) makes them 2D for the k-points, the MD supercell and the validation.

``electronic_type`` is 'metal' for the cells whose SCF needs smeared occupations (Al, Cu, Fe, Ni and
graphene, a zero-gap semimetal); the pipeline then validates bands within +-1 eV of E_F instead of a gap.
``magnetization`` makes Fe and Ni ferromagnets: nspin=2 runs, one model head per spin channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

VACUUM_ANGSTROM = 15.0


@dataclass(frozen=True)
class Material:
    description: str
    build: Callable[[], Atoms]
    electronic_type: str = "insulator"  # 'insulator' | 'metal'
    # {element: pw.x starting magnetisation}: a ferromagnet's nspin=2 runs (workflows/magnetism.py)
    magnetization: dict = field(default_factory=dict)


def _cubic(formula: str, lattice: str, a: float) -> Callable[[], Atoms]:
    def build() -> Atoms:
        from ase.build import bulk

        return bulk(formula, lattice, a=a, cubic=True)

    return build


def _wurtzite(formula: str, a: float, c: float, u: float | None, orthorhombic: bool) -> Callable[[], Atoms]:
    def build() -> Atoms:
        from ase.build import bulk

        return bulk(formula, "wurtzite", a=a, c=c, u=u, orthorhombic=orthorhombic)

    return build


def _sheet(make: Callable[[], Atoms]) -> Callable[[], Atoms]:
    def build() -> Atoms:
        atoms = make()
        atoms.pbc = True  # 2D by the vacuum, not by pbc (see the module docstring)
        return atoms

    return build


def _graphene(formula: str, a: float) -> Callable[[], Atoms]:
    from ase.build import graphene

    return _sheet(lambda: graphene(formula, a=a, vacuum=VACUUM_ANGSTROM / 2))


def _ordered_alloy(
    host: str, swap: str, a: float, swapped: Callable[[np.ndarray], bool]
) -> Callable[[], Atoms]:
    """A zincblende host, 8-atom cubic cell, with the cations at the positions ``swapped`` accepts (Cartesian,
    Angstrom) replaced by ``swap``."""

    def build() -> Atoms:
        from ase.build import bulk

        atoms = bulk(host, "zincblende", a=a, cubic=True)
        cation = atoms.get_chemical_symbols()[0]
        symbols = [
            swap if s == cation and swapped(p) else s
            for s, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=True)
        ]
        atoms.set_chemical_symbols(symbols)
        return atoms

    return build


def _polytype(element: str, a: float, stacking: str) -> Callable[[], Atoms]:
    """A tetrahedral polytype from its stacking of close-packed bilayers (ABC: diamond, AB: lonsdaleite,
    ABCB: 4H), in its hexagonal primitive cell, ideal: every bond a * sqrt(3/8), every angle tetrahedral.
    ``a`` is the hexagonal in-plane constant (the cubic one over sqrt 2)."""

    def build() -> Atoms:
        layer = a * (2 / 3) ** 0.5  # the bilayer spacing: the cubic constant over sqrt 3
        lateral = {"A": (0.0, 0.0), "B": (1 / 3, 2 / 3), "C": (2 / 3, 1 / 3)}
        cell = [[a, 0, 0], [-a / 2, a * 3**0.5 / 2, 0], [0, 0, layer * len(stacking)]]
        fractional = []
        for number, site in enumerate(stacking):
            # the bilayer's two atoms sit on one site, a vertical bond (3/4 of the spacing) apart
            for height in (0.0, 0.75):
                fractional.append((*lateral[site], (number + height) / len(stacking)))
        return Atoms(element * len(fractional), scaled_positions=fractional, cell=cell, pbc=True)

    return build


def _mos2() -> Atoms:
    from ase.build import mx2

    # 2H, S-S distance 3.13 Angstrom (``thickness``), vacuum on both sides: 15 Angstrom between sheets
    return mx2("MoS2", "2H", a=3.18, thickness=3.13, vacuum=VACUUM_ANGSTROM / 2)


MATERIALS: dict[str, Material] = {
    "Al": Material("fcc Al, 4-atom cubic cell, a = 4.05", _cubic("Al", "fcc", 4.05), "metal"),
    "AlAs": Material("zincblende, 8-atom cubic cell, a = 5.661", _cubic("AlAs", "zincblende", 5.661)),
    # the alloys of the two. AlGaAs2's nearest-neighbour pairs (Ga-As, Al-As) both occur in GaAs and AlAs, but
    # its cation second neighbours include Al-Ga, which neither has (docs/transfer.md); AlGa3As4 is then a
    # composition whose pairs within the model's cutoff all occur in GaAs + AlAs + AlGaAs2
    "AlGaAs2": Material(
        "CuAu-I ordered Al0.5Ga0.5As, (001) cation layers alternating, 8-atom cubic cell, a = 5.657",
        _ordered_alloy("GaAs", "Al", 5.657, lambda p: abs(p[2]) < 1e-6),
    ),
    # the Ga-dilute mirror of AlGa3As4: its As bind three Al and one Ga, so with GaAs, AlGaAs2 and AlAs every
    # As environment but AlGa3As4's one Al + three Ga is in training (docs/transfer.md, session 30)
    "Al3GaAs4": Material(
        "ordered Al0.75Ga0.25As, one Ga among the four cations of the 8-atom cubic cell (each Ga's 12 cation "
        "second neighbours are Al), a = 5.659",
        _ordered_alloy("AlAs", "Ga", 5.659, lambda p: np.allclose(p, 0.0)),
    ),
    "AlGa3As4": Material(
        "ordered Al0.25Ga0.75As, one Al among the four cations of the 8-atom cubic cell (each Al's 12 cation "
        "second neighbours are Ga), a = 5.655",
        _ordered_alloy("GaAs", "Al", 5.655, lambda p: np.allclose(p, 0.0)),
    ),
    "C": Material("diamond, 8-atom cubic cell, a = 3.567", _cubic("C", "diamond", 3.567)),
    "Cu": Material("fcc Cu, 4-atom cubic cell, a = 3.615", _cubic("Cu", "fcc", 3.615), "metal"),
    "Fe": Material(
        "bcc Fe, 2-atom cubic cell, a = 2.87, ferromagnetic (nspin=2)", _cubic("Fe", "bcc", 2.87), "metal",
        {"Fe": 0.4},
    ),
    "GaAs": Material("zincblende, 8-atom cubic cell, a = 5.653", _cubic("GaAs", "zincblende", 5.653)),
    "GaN": Material(
        "wurtzite, 4-atom cell, a = 3.189, c = 5.185, u = 0.377", _wurtzite("GaN", 3.189, 5.185, 0.377, False)
    ),
    "graphene": Material("monolayer, 2 atoms, a = 2.46, 15 A vacuum", _graphene("C2", 2.46), "metal"),
    "hBN": Material("monolayer, 2 atoms, a = 2.504, 15 A vacuum", _graphene("BN", 2.504)),
    # cubic fluorite, the high-temperature phase: the monoclinic ground state has 12 atoms too, but 9 free
    # internal coordinates and a monoclinic angle that would need a relaxation first
    "HfO2": Material("cubic fluorite, 12-atom cell, a = 5.08", _cubic("HfO2", "fluorite", 5.08)),
    "Ni": Material(
        "fcc Ni, 4-atom cubic cell, a = 3.52, ferromagnetic (nspin=2)", _cubic("Ni", "fcc", 3.52), "metal",
        {"Ni": 0.4},
    ),
    "MoS2": Material("2H monolayer, 3 atoms, a = 3.18, S-S 3.13, 15 A vacuum", _sheet(_mos2)),
    "Si": Material("diamond, 8-atom cubic cell, a = 5.43", _cubic("Si", "diamond", 5.43)),
    "SiC": Material("zincblende, 8-atom cubic cell, a = 4.36", _cubic("SiC", "zincblende", 4.36)),
    # 4H: half its atoms sit as in diamond, half as in lonsdaleite (eclipsed third neighbours along c), so
    # it teaches the axial crystal field that diamond, strained or not, lacks (docs/transfer.md)
    "Si_4H": Material(
        "4H polytype (ABCB stacking), 8-atom hexagonal cell, a = 3.84", _polytype("Si", 3.84, "ABCB")
    ),
    # hexagonal diamond (lonsdaleite): a second Si polymorph for transfer tests
    "Si_hex": Material(
        "hexagonal diamond, 8-atom orthorhombic cell, a = 3.84",
        _wurtzite("SiSi", 3.84, 3.84 * (8 / 3) ** 0.5, None, True),
    ),
}


def material_names() -> list[str]:
    """The built-in names, sorted case-insensitively (as ``--help`` lists them)."""
    return sorted(MATERIALS, key=str.lower)


def electronic_type(names) -> str:
    """'metal' or 'insulator' for the built-in ``names`` of one pipeline; mixed ones are refused because
    one pipeline has one set of occupations."""
    kinds = {MATERIALS[name].electronic_type for name in names}
    if len(kinds) > 1:
        metals = sorted(n for n in names if MATERIALS[n].electronic_type == "metal")
        raise ValueError(
            f"the materials {sorted(names)} mix metals {metals} and insulators; one pipeline uses one kind "
            "of occupations: run the metals in a pipeline of their own"
        )
    return kinds.pop() if kinds else "insulator"


def magnetization(names) -> dict:
    """The starting magnetisations of the built-in ``names`` together ({} when none is magnetic)."""
    merged = {}
    for name in names:
        merged.update(MATERIALS[name].magnetization)
    return merged
