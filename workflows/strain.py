"""Strained cells for the MD sampler: training data that covers the bond lengths and angles of structures
the model has not seen (a polymorph, a strained interface), which thermal motion at one volume does not.

A strain is a Voigt 6-vector (xx, yy, zz, yz, xz, xy) with engineering shears (gamma = 2 epsilon), applied
as cell' = cell (1 + epsilon), atoms kept at their fractional positions.
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from .dimensionality import is_sheet

MAX_STRAIN = 0.1  # beyond this a "strained" cell is another phase; give it as a structure of its own


def _isotropic(volume_change: float) -> list[float]:
    linear = (1.0 + volume_change) ** (1.0 / 3.0) - 1.0
    return [linear, linear, linear, 0.0, 0.0, 0.0]


# names for --strains: +-3 % volume, and 3 % engineering shear in two planes
PRESETS = {
    "volume": [_isotropic(0.03), _isotropic(-0.03)],
    "shear": [[0.0, 0.0, 0.0, 0.0, 0.0, 0.03], [0.0, 0.0, 0.0, 0.03, 0.0, 0.0]],
}


def preset_strains(names) -> list[list[float]]:
    unknown = sorted(set(names) - set(PRESETS))
    if unknown:
        raise ValueError(f"unknown strain preset(s) {unknown}; choose from {sorted(PRESETS)}")
    return [strain for name in names for strain in PRESETS[name]]


def strain_problem(strains: list, structure: orm.StructureData) -> str | None:
    """Why ``strains`` cannot be applied to ``structure``, or None."""
    for strain in strains:
        numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in strain)
        if len(strain) != 6 or not numbers:
            return (
                f"a strain is six numbers (xx, yy, zz, yz, xz, xy; engineering shears), got {strain}"
            )
        if max(abs(float(x)) for x in strain) > MAX_STRAIN:
            return (
                f"strain {strain} exceeds {MAX_STRAIN}: that is another phase, not a strained cell; give "
                "it as a structure of its own"
            )
    if strains and is_sheet(structure):
        return (
            "strains apply to bulk crystals: a strain along a sheet's vacuum axis would only change the "
            "vacuum; give in-plane strained sheets as structures of their own"
        )
    return None


def strain_matrix(strain) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = (float(x) for x in strain)
    return np.eye(3) + np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]])


@calcfunction
def strained_cell(structure: orm.StructureData, strain: orm.List) -> orm.StructureData:
    """``structure`` with its cell strained by ``strain`` (Voigt, engineering shears), atoms at the same
    fractional positions."""
    atoms = structure.get_ase()
    atoms.set_cell(atoms.cell.array @ strain_matrix(strain.get_list()), scale_atoms=True)
    strained = orm.StructureData(ase=atoms)
    strained.base.extras.set("strain", strain.get_list())
    return strained
