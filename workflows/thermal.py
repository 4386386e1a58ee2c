"""Structures for MD starts and test frames: supercells, and atoms displaced as in harmonic (Einstein model)
equilibrium at a temperature. Plain functions; the calcfunctions that record them in the provenance graph
(``make_supercell``, ``harmonic_start``, ``thermal_supercell``) call these."""

from __future__ import annotations

import numpy as np
from aiida import orm

from slem.qe.md import harmonic_displacements


def repeated(structure: orm.StructureData, repetitions) -> orm.StructureData:
    """``structure`` repeated ``repetitions`` times along each lattice vector (plain function)."""
    return orm.StructureData(ase=structure.get_ase().repeat(tuple(int(n) for n in repetitions)))


def site_masses(structure: orm.StructureData) -> list[float]:
    """Mass (amu) of every site, from its kind."""
    return [structure.get_kind(site.kind_name).mass for site in structure.sites]


def site_frequencies(structure: orm.StructureData, frequency: orm.Float | orm.Dict) -> float | list[float]:
    """Einstein frequency (THz): one for every site (Float), or per element (Dict) for each site."""
    if isinstance(frequency, orm.Dict):
        table = frequency.get_dict()
        return [float(table[structure.get_kind(site.kind_name).symbol]) for site in structure.sites]
    return frequency.value


def frequency_problem(structure: orm.StructureData, frequency: orm.Float | orm.Dict) -> str | None:
    if isinstance(frequency, orm.Dict):
        table = frequency.get_dict()
        missing = sorted({kind.symbol for kind in structure.kinds} - set(table))
        if missing:
            return (f"einstein_frequency has no frequency for {missing}: give one per element in THz, "
                    "e.g. {'Si': 10.0, 'C': 25.0}, or one number for all")
        bad = {k: v for k, v in table.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0}
        if bad:
            return f"einstein_frequency values must be positive frequencies in THz, got {bad}"
        return None
    if not frequency.value > 0:
        return (
            "einstein_frequency must be a positive frequency in THz (about 10 for Si), got "
            f"{frequency.value}; leave it out to start from the supercell itself"
        )
    return None


def with_positions(structure: orm.StructureData, positions, cell=None) -> orm.StructureData:
    """A new StructureData with ``structure``'s kinds, sites and pbc at ``positions`` (Angstrom), in
    ``cell`` if given."""
    moved = orm.StructureData(cell=structure.cell if cell is None else cell)
    moved.pbc = structure.pbc
    for kind in structure.kinds:
        moved.append_kind(kind)
    for site, position in zip(structure.sites, positions, strict=True):
        moved.append_site(orm.Site(kind_name=site.kind_name, position=tuple(float(x) for x in position)))
    return moved


def displaced(structure: orm.StructureData, temperature: float, frequency, seed: list) -> orm.StructureData:
    """The plain function behind ``harmonic_start``."""
    masses = site_masses(structure)
    frequencies = site_frequencies(structure, frequency)
    shift = harmonic_displacements(masses, temperature, frequencies, seed)
    return with_positions(structure, np.array([site.position for site in structure.sites]) + shift)
