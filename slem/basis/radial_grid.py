"""Radial quadrature, spline transfer from the UPF log mesh, and the hard-wall Bessel basis.

All lengths here are bohr. Each l-channel inside a hard wall at r_c is expanded in
R_n(r) = N_n j_l(q_n r) with j_l(q_n r_c) = 0: these are the eigenfunctions of the kinetic
operator in the sphere, so the kinetic matrix is diagonal (q_n^2 / 2 Ha) and every expanded
function is exactly zero at r_c.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import spherical_jn


def simpson_grid(r_max: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform grid on [0, r_max] with an odd number of points and its Simpson weights."""
    n_int = max(2, 2 * int(np.ceil(r_max / (2.0 * spacing))))
    r = np.linspace(0.0, r_max, n_int + 1)
    h = r[1] - r[0]
    w = np.full(n_int + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return r, w * h / 3.0


def log_mesh_spline(r_mesh: np.ndarray, values: np.ndarray) -> CubicSpline:
    """Cubic spline through a function given on the UPF's logarithmic mesh."""
    return CubicSpline(r_mesh, values, extrapolate=True)


@lru_cache(maxsize=8)
def _bessel_zeros(l: int, x_max: float) -> np.ndarray:
    x = np.arange(0.5, x_max + np.pi, 0.05)
    y = spherical_jn(l, x)
    idx = np.nonzero(np.sign(y[:-1]) * np.sign(y[1:]) < 0)[0]
    # Newton from the bracket midpoints (brackets 0.05 wide, zeros simple): converged in a few steps.
    z = 0.5 * (x[idx] + x[idx + 1])
    for _ in range(8):
        z = z - spherical_jn(l, z) / spherical_jn(l, z, derivative=True)
    return z


def bessel_zeros(l: int, x_max: float) -> np.ndarray:
    """Positive zeros of the spherical Bessel function j_l below x_max."""
    # Cache on a rounded-up bound so that the bisection over r_c reuses one table.
    bound = float(np.ceil(x_max / 100.0) * 100.0)
    zeros = _bessel_zeros(l, bound)
    return zeros[zeros < x_max]


class BesselBasis:
    """Orthonormal hard-wall basis N_n j_l(q_n r) for one l inside r_c, up to wave number q_max."""

    def __init__(self, l: int, r_c: float, q_max: float):
        self.l = l
        self.r_c = r_c
        zeros = bessel_zeros(l, q_max * r_c)
        if len(zeros) < 4:
            zeros = bessel_zeros(l, 4.0 * np.pi + l * 2.0)[:4]
        self.q = zeros / r_c
        self.norm = np.sqrt(2.0 / r_c**3) / np.abs(spherical_jn(l + 1, zeros))
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def size(self) -> int:
        return len(self.q)

    @property
    def kinetic(self) -> np.ndarray:
        return 0.5 * self.q**2

    def _tables(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The SCF loop and the state extraction revisit the same grid many times.
        key = (r.size, float(r[0]), float(r[-1]), float(r.sum()))
        if key not in self._cache:
            x = np.outer(r, self.q)
            values = self.norm * spherical_jn(self.l, x)
            values[r >= self.r_c] = 0.0
            derivs = self.norm * self.q * spherical_jn(self.l, x, derivative=True)
            derivs[r > self.r_c] = 0.0
            if len(self._cache) > 4:
                self._cache.clear()
            self._cache[key] = (values, derivs)
        return self._cache[key]

    def values(self, r: np.ndarray) -> np.ndarray:
        """R_n(r), shape (len(r), size); exactly zero for r >= r_c."""
        return self._tables(r)[0]

    def derivatives(self, r: np.ndarray) -> np.ndarray:
        """dR_n/dr, shape (len(r), size)."""
        return self._tables(r)[1]
