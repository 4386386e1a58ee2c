"""Which cell axes of a periodic cell are vacuum: the one rule that makes a sheet two-dimensional.

pw.x and the projection need 3D periodicity, so a monolayer is stored as a 3D cell with a vacuum gap and
``pbc`` all True (``calcjobs/checks.py`` refuses anything else). The dimensionality therefore cannot be
read from ``pbc`` alone; it is decided here, once, from the geometry:

    axis i is a vacuum axis if ``pbc[i]`` is False, or if the atoms leave an empty slab at least
    ``VACUUM_GAP_ANGSTROM`` thick between the lattice planes spanned by the other two cell vectors.

The slab thickness is the largest gap between the atoms' fractional coordinates along axis i (wrapping
around the cell) times the plane spacing 1/|b_i| (b_i the reciprocal vector without 2 pi), so it is the
perpendicular distance for oblique cells too. 10 Angstrom is far above any bonded distance in a bulk cell
(the longest first-neighbour bonds are ~3.5 Angstrom, interlayer gaps of layered bulk crystals ~3.5) and
below the >= 15 Angstrom of vacuum the built-in monolayers carry, so the rule is not near a boundary for
either. Used for: one k-point along vacuum axes (SCF and MD), no MD supercell repetition along them, 2D
band paths and in-plane random k-points in the validation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

VACUUM_GAP_ANGSTROM = 10.0


def vacuum_gaps(cell: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Thickness (Angstrom) of the widest atom-free slab along each cell axis (3,)."""
    cell = np.asarray(cell, dtype=float).reshape(3, 3)
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError(f"the cell {cell.tolist()} is singular; give three independent lattice vectors")
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)  # distance between lattice planes
    if len(positions) == 0:
        return spacing
    frac = np.linalg.solve(cell.T, positions.T).T % 1.0
    gaps = np.empty(3)
    for axis in range(3):
        s = np.sort(frac[:, axis])
        steps = np.append(np.diff(s), s[0] + 1.0 - s[-1])  # the last step wraps into the next cell
        gaps[axis] = steps.max() * spacing[axis]
    return gaps


def vacuum_axes(
    cell: np.ndarray,
    positions: np.ndarray,
    pbc: Sequence[bool] = (True, True, True),
    min_gap: float = VACUUM_GAP_ANGSTROM,
) -> tuple[bool, bool, bool]:
    """True for each axis that is not periodic in the material's sense (see the module docstring)."""
    pbc = np.asarray(pbc, dtype=bool).reshape(3)
    gaps = vacuum_gaps(cell, positions)
    return tuple(bool(not p or g >= min_gap) for p, g in zip(pbc, gaps, strict=True))


def periodic_axes(
    cell: np.ndarray,
    positions: np.ndarray,
    pbc: Sequence[bool] = (True, True, True),
    min_gap: float = VACUUM_GAP_ANGSTROM,
) -> tuple[bool, bool, bool]:
    """The complement of ``vacuum_axes``: the axes along which the material is extended."""
    return tuple(not v for v in vacuum_axes(cell, positions, pbc, min_gap))


def in_plane_mesh(
    mesh: Sequence[int], offset: Sequence[float], vacuum: Sequence[bool]
) -> tuple[list[int], list[float]]:
    """A k-mesh with one unshifted point along every vacuum axis: the bands do not disperse there, and a
    0.5 offset would sample a k_z that is not Gamma for no gain."""
    return (
        [1 if v else int(n) for n, v in zip(mesh, vacuum, strict=True)],
        [0.0 if v else float(o) for o, v in zip(offset, vacuum, strict=True)],
    )


def in_plane_repetitions(repetitions: Sequence[int], vacuum: Sequence[bool]) -> list[int]:
    """Supercell repetitions with 1 along every vacuum axis (stacking sheets would make a bulk crystal)."""
    return [1 if v else int(n) for n, v in zip(repetitions, vacuum, strict=True)]


def mesh_from_distance(cell: np.ndarray, distance: float, periodic: Sequence[bool]) -> list[int]:
    """k-mesh n_i = ceil(|b_i| / distance) (b with 2 pi, 1/Angstrom: pw.x's and aiida's k-point distance),
    one point along the axes that are not periodic. |b_i| / distance is rounded to 5 decimals first, as
    aiida's ``create_kpoints_from_distance`` does, so that a ratio at an integer is not pushed one up."""
    if not distance > 0:
        raise ValueError(f"a k-point distance must be positive (1/Angstrom), got {distance}")
    reciprocal = 2.0 * np.pi * np.linalg.inv(np.asarray(cell, dtype=float).reshape(3, 3)).T
    return [
        max(1, int(np.ceil(round(float(np.linalg.norm(b)) / distance, 5)))) if p else 1
        for b, p in zip(reciprocal, periodic, strict=True)
    ]
