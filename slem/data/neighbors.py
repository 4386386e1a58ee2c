"""Periodic neighbour lists with per-species cutoffs.

An edge (i, j, R) exists when |tau_j + R.cell - tau_i| < (r_A + r_B) / 2, with r_A the cutoff of
atom i's species and r_B that of atom j's. With r_A twice the orbital radius this is exactly the
set of pairs whose orbitals overlap, which is what the projection stores. The self pair at R = 0 is
excluded; periodic images of an atom itself (i, i, R != 0) are ordinary edges.

We use vesin: it is fast (cell lists in C++), tiny, has no compiled dependencies beyond its wheel,
handles non-orthogonal cells and mixed periodicity, and returns integer cell shifts directly. It is
queried once with the largest cutoff and the result is filtered per species pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Atoms closer than this are duplicated or overlapping. The pipeline refuses such structures before any
# DFT (calcjobs/checks.py) and prediction refuses them too: no model has seen such a bond.
MIN_DISTANCE_ANGSTROM = 0.5


class CutoffError(ValueError):
    """The per-species cutoffs do not cover the structure or are not positive."""


class CloseAtomsError(ValueError):
    """Two atoms (or an atom and its periodic image) are closer than :data:`MIN_DISTANCE_ANGSTROM`."""


@dataclass
class NeighborList:
    """Edges sorted by (i, j, Rx, Ry, Rz); ``vectors`` are tau_j + R.cell - tau_i in Angstrom."""

    i: np.ndarray  # (E,) int64, centre atom
    j: np.ndarray  # (E,) int64, neighbour atom
    shifts: np.ndarray  # (E, 3) int64 cell shift R of atom j
    vectors: np.ndarray  # (E, 3) float64
    distances: np.ndarray  # (E,) float64

    def __len__(self) -> int:
        return len(self.i)


def pair_cutoffs(symbols: Sequence[str], cutoffs: Mapping[str, float]) -> np.ndarray:
    """Per-atom cutoff r_A as an array, with a clear error for species the mapping lacks."""
    missing = sorted(set(symbols) - set(cutoffs))
    if missing:
        raise CutoffError(
            f"no cutoff given for species {missing}; "
            f"pass e.g. cutoffs={{'{missing[0]}': 7.4, ...}} (Angstrom)"
        )
    radii = np.array([float(cutoffs[s]) for s in symbols], dtype=np.float64)
    if np.any(~np.isfinite(radii)) or np.any(radii <= 0):
        raise CutoffError(f"cutoffs must be positive and finite, got {dict(cutoffs)}")
    return radii


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: Sequence[bool],
    symbols: Sequence[str],
    cutoffs: Mapping[str, float],
) -> NeighborList:
    """Full (both directions) neighbour list with the pair cutoff (r_A + r_B) / 2."""
    positions = np.ascontiguousarray(positions, dtype=np.float64).reshape(-1, 3)
    cell = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
    pbc = [bool(p) for p in np.asarray(pbc, dtype=bool).reshape(3)]
    if len(symbols) != len(positions):
        raise ValueError(f"{len(symbols)} symbols for {len(positions)} positions")
    radii = pair_cutoffs(symbols, cutoffs)
    if len(positions) == 0:
        none = np.zeros(0, np.int64)
        return NeighborList(none, none, np.zeros((0, 3), np.int64), np.zeros((0, 3)), np.zeros(0))
    for axis in range(3):
        if pbc[axis] and np.linalg.norm(cell[axis]) == 0:
            raise CutoffError(
                f"periodic direction {axis} has a zero lattice vector; give the cell or set pbc False"
            )
    import vesin  # vesin imports torch when present (~2 s); only pay for it here

    calculator = vesin.NeighborList(cutoff=float(radii.max()), full_list=True)
    i, j, shifts = calculator.compute(positions, cell, pbc, "ijS")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    shifts = shifts.astype(np.int64).reshape(-1, 3)
    vectors = positions[j] + shifts @ cell - positions[i]
    distances = np.linalg.norm(vectors, axis=1)
    self_pair = (i == j) & ~shifts.any(axis=1)
    keep = (distances < 0.5 * (radii[i] + radii[j])) & ~self_pair
    i, j, shifts, vectors, distances = i[keep], j[keep], shifts[keep], vectors[keep], distances[keep]
    order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, i))
    return NeighborList(i[order], j[order], shifts[order], vectors[order], distances[order])


def check_min_distance(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: Sequence[bool],
    symbols: Sequence[str],
    label: str = "the structure",
    minimum: float = MIN_DISTANCE_ANGSTROM,
) -> None:
    """Refuse atoms closer than ``minimum`` (Angstrom), periodic images included, naming the closest pair."""
    found = neighbor_list(positions, cell, pbc, symbols, {s: float(minimum) for s in set(symbols)})
    if not len(found):
        return
    k = int(np.argmin(found.distances))
    i, j, distance = int(found.i[k]), int(found.j[k]), float(found.distances[k])
    if i == j:
        pair = f"atom {i} ({symbols[i]}) and its periodic image {found.shifts[k].tolist()} are"
    else:
        i, j = min(i, j), max(i, j)
        pair = f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are"
    raise CloseAtomsError(
        f"{label}: {pair} {distance:.3f} Angstrom apart (minimum {minimum}); "
        "remove duplicated or overlapping atoms"
    )
