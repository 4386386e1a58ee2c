"""The projection k-mesh: large enough that the Fourier transform to H(R) does not alias.

Sampling H(k) on an n1 x n2 x n3 mesh and transforming back gives sum_L H(R + L) over the
lattice L of the Born-von Karman supercell. If every non-zero supercell vector is longer
than twice the largest range of a matrix element, at most one term of that sum is non-zero
for any bond we keep, so H(R) is exact. A supercell vector with a non-zero component
n_i along cell vector i is at least n_i * h_i long, h_i being the height of the cell
perpendicular to the other two vectors, so n_i * h_i > 2 * range suffices.
"""

from __future__ import annotations

import numpy as np


def perpendicular_heights(cell: np.ndarray) -> np.ndarray:
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    return np.array(
        [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    )


def auto_kmesh(cell: np.ndarray, max_range: float) -> tuple[int, int, int]:
    """Smallest mesh whose supercell heights exceed 2 * max_range (same length unit as cell)."""
    heights = perpendicular_heights(cell)
    return tuple(int(np.floor(2 * max_range / h)) + 1 for h in heights)


def check_kmesh(cell: np.ndarray, kmesh: tuple[int, int, int], max_range: float) -> list[str]:
    """Directions (as messages) in which a user-chosen mesh is too coarse to be alias-free."""
    heights = perpendicular_heights(cell) * np.asarray(kmesh)
    return [
        f"direction {i + 1}: supercell height {h:.2f} <= 2 x range {2 * max_range:.2f}"
        for i, h in enumerate(heights)
        if h <= 2 * max_range
    ]


def reduced_mesh(kmesh: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-centred mesh (fractional k, in [-1/2, 1/2)) reduced by time reversal, and weights.

    H(-k) = H(k)^* for real orbitals and a real Hamiltonian, so one of each pair (k, -k)
    suffices; it carries weight 2, self-conjugate points weight 1. Weights sum to n1*n2*n3.
    """
    n = np.asarray(kmesh)
    idx = np.stack(np.meshgrid(*[np.arange(m) for m in n], indexing="ij"), axis=-1).reshape(-1, 3)
    linear = np.ravel_multi_index(idx.T, n)
    partner = np.ravel_multi_index(((-idx) % n).T, n)
    keep = linear <= partner
    weights = np.where(linear[keep] == partner[keep], 1.0, 2.0)
    frac = idx[keep] / n
    frac = frac - np.round(frac)  # fold into [-1/2, 1/2]
    return frac, weights


def lattice_shifts_within(cell: np.ndarray, max_length: float) -> np.ndarray:
    """All integer R whose vector R.cell could lie within max_length of a bond inside the cell."""
    heights = perpendicular_heights(cell)
    bounds = np.ceil(max_length / heights).astype(int) + 1
    axes = [np.arange(-b, b + 1) for b in bounds]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
