"""The plane-wave set of pw.x at one k-point and the local potential in reciprocal space.

pw.x keeps k+G with |k+G|^2 <= ecutwfc (Ry, bohr^-2) (gk_sort), and applies the local
potential on the dense FFT grid: V psi on the grid and back is a circular convolution, so
<G|V|G'> = V_grid((G - G') mod grid) is exactly what pw.x applies (for a grid that holds the
density sphere there is no wrap-around at all).
"""

from __future__ import annotations

import numpy as np

SPHERE_EPS = 1e-8  # pw.x's eps8 tolerance on the cutoff test


def reciprocal_vectors(cell: np.ndarray) -> np.ndarray:
    """Rows b_i with a_i . b_j = 2 pi delta_ij."""
    return 2 * np.pi * np.linalg.inv(cell).T


def g_sphere(k_cart: np.ndarray, cell: np.ndarray, ecut_ry: float) -> tuple[np.ndarray, np.ndarray]:
    """Miller indices (npw, 3) and Cartesian k+G (npw, 3) with |k+G|^2 <= ecut_ry, bohr units."""
    recip = reciprocal_vectors(cell)
    gmax = np.sqrt(ecut_ry) + np.linalg.norm(k_cart)
    # |n_i| <= (|k+G| + |k|) |a_i| / 2 pi bounds every Miller index inside the sphere.
    bounds = np.ceil(gmax * np.linalg.norm(cell, axis=1) / (2 * np.pi)).astype(int) + 1
    axes = [np.arange(-b, b + 1) for b in bounds]
    miller = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    kg = k_cart + miller @ recip
    keep = np.einsum("ij,ij->i", kg, kg) <= ecut_ry + SPHERE_EPS
    return miller[keep], kg[keep]


def potential_in_g(values_ry: np.ndarray) -> np.ndarray:
    """V(G) on the dense grid, indexed by Miller index modulo the grid."""
    return np.fft.fftn(values_ry) / values_ry.size


def local_potential_matrix(v_g: np.ndarray, miller: np.ndarray) -> np.ndarray:
    """Dense <k+G|V|k+G'> (npw, npw) in Ry."""
    grid = np.asarray(v_g.shape)
    diff = (miller[:, None, :] - miller[None, :, :]) % grid
    return v_g[diff[..., 0], diff[..., 1], diff[..., 2]]


def apply_local_potential(
    v_r: np.ndarray, miller: np.ndarray, coeffs: np.ndarray, chunk: int = 16
) -> np.ndarray:
    """V|psi> for columns of ``coeffs`` (npw, n) by FFT on the dense grid, chunked over columns."""
    grid = v_r.shape
    idx = tuple((miller % np.asarray(grid)).T)
    out = np.empty_like(coeffs)
    for start in range(0, coeffs.shape[1], chunk):
        block = coeffs[:, start : start + chunk]
        box = np.zeros((block.shape[1], *grid), dtype=np.complex128)
        box[(slice(None), *idx)] = block.T
        real = np.fft.ifftn(box, axes=(1, 2, 3))
        real *= v_r
        back = np.fft.fftn(real, axes=(1, 2, 3))
        out[:, start : start + chunk] = back[(slice(None), *idx)].T
    return out
