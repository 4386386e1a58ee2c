"""The k-points of a cell as its supercell sees them: a size test must sample the same Brillouin zone.

A supercell of r_i repetitions holds, at one of its k-points K, the cell's states at the r_1 r_2 r_3 points
(K + m) / r. A cell's Monkhorst-Pack set k = (i + o) / n is therefore sampled exactly by the supercell's
set K = r k (mod 1), which is itself a mesh n / r with the same offset o, when every n_i is a multiple of
r_i. Otherwise no supercell set equals it: the folded points then sample a finer set (the cell's mesh
shifted by multiples of 1/r), which is the closest the supercell can do.

Measured on perfect Si8 (Debian PBE Si, 20 Ry, DZP): a single shifted k-point puts the onsite H 0.12-0.30 eV
above the k-converged values; the 2x2x2 supercell at the same single shifted point agrees with Si8 at the
2x2x2 shifted mesh to 0.04 meV, i.e. with what the fold predicts, not with Si8 at one point
(docs/transfer.md, "Larger cells sample the training cells' k-points").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DECIMALS = 10  # folded coordinates are rounded before points are merged


def mesh_points(mesh: Sequence[int], offset: Sequence[float]) -> np.ndarray:
    """(n1 n2 n3, 3) crystal coordinates (i + o) / n of a Monkhorst-Pack set, offsets in mesh steps."""
    axes = [(np.arange(n) + o) / n for n, o in zip(mesh, offset, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def folded_points(points: np.ndarray, weights: np.ndarray, repetitions: Sequence[int]) -> tuple:
    """The cell's k-points (crystal coordinates) in the supercell's crystal coordinates, folded into
    [0, 1) and merged: (points, weights summing to 1)."""
    folded = np.round(np.mod(np.asarray(points) * np.asarray(repetitions), 1.0), DECIMALS) % 1.0
    unique, inverse = np.unique(folded, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=np.asarray(weights, dtype=float), minlength=len(unique))
    return unique, summed / summed.sum()


def supercell_mesh(
    mesh: Sequence[int], offset: Sequence[float], repetitions: Sequence[int]
) -> tuple[list[int], list[float]] | None:
    """The supercell's mesh (n / r, same offset) that samples exactly the cell's (mesh, offset), or None
    where some n_i is not a multiple of r_i (then use ``folded_points``)."""
    if any(int(n) % int(r) for n, r in zip(mesh, repetitions, strict=True)):
        return None
    return [int(n) // int(r) for n, r in zip(mesh, repetitions, strict=True)], [float(o) for o in offset]
