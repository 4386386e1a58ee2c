"""The projection k-mesh: large enough that the Fourier transform to H(R) does not alias.

Sampling H(k) on an n1 x n2 x n3 mesh and transforming back gives sum_L H(R + L) over the
lattice L of the Born-von Karman supercell. If |d + L| exceeds the largest range of a matrix
element for every stored bond vector d and every non-zero supercell vector L, at most one term of
that sum is non-zero for any bond we keep, so H(R) is exact. A supercell vector with a non-zero
component n_i along cell vector i reaches at least n_i * h_i along the normal of the other two
vectors (h_i: the cell's height there), and a bond reaches at most w_i along it, so
n_i * h_i - w_i > range suffices. w_i <= range always (the old n_i * h_i > 2 * range); in a sheet
w_i is the sheet's thickness, so a 15 Angstrom vacuum needs one k-point across it.
"""

from __future__ import annotations

import numpy as np


def perpendicular_heights(cell: np.ndarray) -> np.ndarray:
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    return np.array(
        [volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    )


def normal_reach(cell: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """w_i: the largest |component| of the bond vectors (n, 3) along the normal of each cell plane."""
    cell = np.asarray(cell, dtype=np.float64)
    normals = np.linalg.inv(cell).T
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    bonds = np.asarray(bonds, dtype=np.float64).reshape(-1, 3)
    return np.abs(bonds @ normals.T).max(axis=0) if len(bonds) else np.zeros(3)


def auto_kmesh(cell: np.ndarray, max_range: float, reach: np.ndarray | None = None) -> tuple[int, int, int]:
    """Smallest alias-free mesh (same length unit as cell); ``reach``: ``normal_reach`` of the stored
    bonds, by default max_range along every normal (then each supercell height exceeds 2 * max_range)."""
    heights = perpendicular_heights(cell)
    w = np.full(3, float(max_range)) if reach is None else np.asarray(reach, dtype=np.float64)
    return tuple(int(np.floor((max_range + wi) / h)) + 1 for h, wi in zip(heights, w, strict=True))


def check_kmesh(
    cell: np.ndarray, kmesh: tuple[int, int, int], max_range: float, reach: np.ndarray | None = None
) -> list[str]:
    """Directions (as messages) in which a user-chosen mesh is too coarse to be alias-free."""
    heights = perpendicular_heights(cell) * np.asarray(kmesh)
    w = np.full(3, float(max_range)) if reach is None else np.asarray(reach, dtype=np.float64)
    return [
        f"direction {i + 1}: supercell height {h:.2f} <= range {max_range:.2f} + bond reach {wi:.2f}"
        for i, (h, wi) in enumerate(zip(heights, w, strict=True))
        if h - wi <= max_range
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
