"""Two-centre integrals <f_a(r)|O|f_b(r - d)> of radial functions times real harmonics (SIESTA style).

With f(r) = R(r) Y_lm(r_hat) and F(q) = int r^2 R(r) j_l(q r) dr, Parseval and the plane-wave
expansion give

    <f_a|f_b(. - d)> = 8 sum_L (-1)^((l_a - l_b - L)/2) I_L(|d|) sum_M G(a, b, LM) Y_LM(d_hat),
    I_L(d) = int_0^qmax q^2 w(q) F_a(q) F_b(q) j_L(q d) dq,

w = 1 for the overlap and q^2 for the kinetic energy (Ry). G are real Gaunt coefficients
int Y_a Y_b Y_LM dOmega in the project's harmonics, found by exact quadrature. I_L is tabulated
on a grid of distances and interpolated by cubic splines; everything is in bohr.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.interpolate import CubicSpline

from .radial import outer_bessels, real_ylm, real_ylms, simpson_weights

D_STEP = 0.04  # bohr; the tables' spline error is below 1e-8 (checked against a 0.01 step)


@cache
def real_gaunt(l1: int, l2: int, l3: int) -> np.ndarray:
    """G[m1, m2, m3] = int Y_l1m1 Y_l2m2 Y_l3m3 dOmega (Gauss-Legendre x uniform: exact to degree 31)."""
    x, wx = np.polynomial.legendre.leggauss(16)
    phi = np.arange(32) * (2 * np.pi / 32)
    st = np.sqrt(1 - x**2)
    v = np.stack(
        [np.outer(st, np.cos(phi)).ravel(), np.outer(st, np.sin(phi)).ravel(), np.repeat(x, 32)], axis=1
    )
    w = np.repeat(wx, 32) * (2 * np.pi / 32)
    y1, y2, y3 = real_ylm(l1, v), real_ylm(l2, v), real_ylm(l3, v)
    g = np.einsum("p,pa,pb,pc->abc", w, y1, y2, y3)
    g[np.abs(g) < 1e-14] = 0.0
    return g


class TwoCentreTable:
    """<f_a|O|f_b(. - d)> for all radial functions a of one centre and b of another.

    ``left``/``right``: (l, F(q)) pairs on the uniform grid ``q`` (from 0); ``power`` 0 gives the
    overlap, 2 the kinetic energy in Ry; distances up to ``max_distance`` (bohr). Tables sharing
    ``bessel_cache`` share j_L(q d); ``bessel_lmax`` fills it up to that L at once, so that a later
    table with a higher L does not compute it again."""

    def __init__(
        self,
        left: list[tuple[int, np.ndarray]],
        right: list[tuple[int, np.ndarray]],
        q: np.ndarray,
        power: int,
        max_distance: float,
        bessel_cache: dict | None = None,
        bessel_lmax: int = 0,
    ) -> None:
        self.left_ls = [l for l, _ in left]
        self.right_ls = [l for l, _ in right]
        self.left_sizes = [2 * l + 1 for l in self.left_ls]
        self.right_sizes = [2 * l + 1 for l in self.right_ls]
        self.max_distance = float(max_distance)
        d = np.arange(0.0, max_distance + 4 * D_STEP, D_STEP)
        weights = simpson_weights(len(q), q[1] - q[0]) * q ** (2 + power)
        cache = {} if bessel_cache is None else bessel_cache
        self.terms: list[tuple[int, int, int, float, np.ndarray]] = []  # (a, b, L, 8 * sign, Gaunt)
        products: list[np.ndarray] = []
        for a, (la, fa) in enumerate(left):
            for b, (lb, fb) in enumerate(right):
                for big_l in range(abs(la - lb), la + lb + 1, 2):
                    sign = (-1.0) ** ((la - lb - big_l) // 2)
                    self.terms.append((a, b, big_l, 8.0 * sign, real_gaunt(la, lb, big_l)))
                    products.append(weights * fa * fb)
        if not self.terms:
            self.spline = None
            return
        # Every (term, M) contributes radial_term(d) Y_LM(d_hat) times a fixed matrix: stacked as
        # rows of one coupling matrix, the blocks of all bonds are a single product.
        row0, col0 = np.cumsum([0, *self.left_sizes]), np.cumsum([0, *self.right_sizes])
        self._ls = sorted({t[2] for t in self.terms})
        ylm_start = dict(zip(self._ls, np.cumsum([0, *(2 * l + 1 for l in self._ls)])[:-1], strict=True))
        coupling, self._term_of, self._ylm_column = [], [], []
        for n, (a, b, big_l, factor, gaunt) in enumerate(self.terms):
            for m in range(2 * big_l + 1):
                if not gaunt[:, :, m].any():
                    continue
                block = np.zeros((row0[-1], col0[-1]))
                block[row0[a] : row0[a + 1], col0[b] : col0[b + 1]] = factor * gaunt[:, :, m]
                coupling.append(block.ravel())
                self._term_of.append(n)
                self._ylm_column.append(ylm_start[big_l] + m)
        self._coupling = np.array(coupling)
        table = np.empty((len(d), len(self.terms)))
        lmax = max(t[2] for t in self.terms)
        key = (len(d), float(d[-1]), len(q), float(q[-1]))
        if len(cache.get(key, [])) <= lmax:
            cache[key] = outer_bessels(max(lmax, bessel_lmax), d, q)
        for big_l in {t[2] for t in self.terms}:
            cols = [n for n, t in enumerate(self.terms) if t[2] == big_l]
            table[:, cols] = cache[key][big_l] @ np.array([products[n] for n in cols]).T
        self.spline = CubicSpline(d, table)

    def blocks(self, bonds: np.ndarray) -> np.ndarray:
        """Blocks (P, sum 2l_a+1, sum 2l_b+1) for bond vectors d (P, 3), bohr; zero beyond the table."""
        bonds = np.asarray(bonds, dtype=np.float64).reshape(-1, 3)
        out = np.zeros((len(bonds), sum(self.left_sizes), sum(self.right_sizes)))
        if self.spline is None or not len(bonds):
            return out
        dist = np.linalg.norm(bonds, axis=1)
        inside = dist <= self.max_distance
        radial = self.spline(np.minimum(dist, self.max_distance)) * inside[:, None]
        ylm = real_ylms(self._ls, bonds)
        angular = np.concatenate([ylm[l] for l in self._ls], axis=1)
        expansion = radial[:, self._term_of] * angular[:, self._ylm_column]
        return (expansion @ self._coupling).reshape(out.shape)
