"""Radial Fourier-Bessel transforms and real spherical harmonics, in atomic units (bohr).

A function f(r) Y_lm(r_hat) has the Fourier transform
4 pi (-i)^l Y_lm(q_hat) integral r^2 f(r) j_l(q r) dr; the plane-wave coefficients of its
Bloch sum follow by dividing by sqrt(cell volume) and multiplying by exp(-i q.tau).
The real harmonics follow the project convention (no Condon-Shortley phase, m = -l..l,
p = (y, z, x), d = (xy, yz, z2, xz, x2-y2)). The plane-wave expansion
exp(-i q.r) = 4 pi sum_l (-i)^l j_l(q r) sum_m Y_lm(q_hat) Y_lm(r_hat) holds for any real
orthonormal set, so the formula needs no extra phases.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import lpmv, spherical_jn

from slem.units import BOHR_ANGSTROM as BOHR

Q_STEP = 0.005  # bohr^-1; cubic interpolation error at this step is far below 1e-8 relative


def real_ylm(l: int, vectors: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics Y_lm(v_hat), shape (n, 2l+1), m = -l..l."""
    return real_ylms([l], vectors)[l]


def real_ylms(ls, vectors: np.ndarray, norm: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """``real_ylm`` for each l in ``ls`` from one normalisation of the vectors (``norm``: their
    lengths, if the caller has them)."""
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    norm = np.sqrt(np.einsum("ij,ij->i", v, v)) if norm is None else norm
    safe = np.where(norm > 1e-12, norm, 1.0)
    x, y, z = (v / safe[:, None]).T
    z = np.where(norm > 1e-12, z, 1.0)  # q = 0: any direction; only l = 0 survives there
    return {l: _real_ylm_unit(l, x, y, z) for l in ls}


def _real_ylm_unit(l: int, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    pi = np.pi
    if l == 0:
        return np.full((len(x), 1), 0.5 / np.sqrt(pi))
    if l == 1:
        return np.sqrt(3 / (4 * pi)) * np.stack([y, z, x], axis=1)
    if l == 2:
        c = np.sqrt(15 / (4 * pi))
        cx = c * x
        return np.stack(
            [cx * y, c * y * z, np.sqrt(5 / (16 * pi)) * (3 * z**2 - 1), cx * z, c / 2 * (x**2 - y**2)],
            axis=1,
        )
    if l == 3:
        return np.stack(
            [
                np.sqrt(35 / (32 * pi)) * y * (3 * x**2 - y**2),
                np.sqrt(105 / (4 * pi)) * x * y * z,
                np.sqrt(21 / (32 * pi)) * y * (5 * z**2 - 1),
                np.sqrt(7 / (16 * pi)) * z * (5 * z**2 - 3),
                np.sqrt(21 / (32 * pi)) * x * (5 * z**2 - 1),
                np.sqrt(105 / (16 * pi)) * z * (x**2 - y**2),
                np.sqrt(35 / (32 * pi)) * x * (x**2 - 3 * y**2),
            ],
            axis=1,
        )
    if l > 8:
        raise ValueError(f"angular momentum l={l} is not supported (s, p, d, f for orbitals; l <= 8 inside)")
    # l >= 4 appears only inside two-centre expansions, where any orthonormal real set works.
    from math import factorial

    phi = np.arctan2(y, x)
    out = np.empty((len(x), 2 * l + 1))
    for m in range(-l, l + 1):
        a = abs(m)
        norm = np.sqrt((2 * l + 1) / (4 * pi) * factorial(l - a) / factorial(l + a))
        legendre = lpmv(a, l, z)
        if m == 0:
            out[:, l] = norm * legendre
        else:
            out[:, l + m] = np.sqrt(2) * norm * legendre * (np.cos(a * phi) if m > 0 else np.sin(a * phi))
    return out


def _qgrid(qmax: float) -> np.ndarray:
    return np.arange(0.0, qmax + 4 * Q_STEP, Q_STEP)


def qe_simpson(values: np.ndarray, rab: np.ndarray) -> np.ndarray:
    """Quantum ESPRESSO's Simpson rule on a radial mesh (last axis); ignores a trailing even point."""
    n = values.shape[-1]
    if n % 2 == 0:
        n -= 1
    w = np.zeros(n)
    w[0:n:2] = 2.0
    w[1:n:2] = 4.0
    w[0] = w[n - 1] = 1.0
    return (values[..., :n] * (w * rab[:n])).sum(axis=-1) / 3.0


def orbital_transform(l: int, r_ang: np.ndarray, values: np.ndarray, qmax: float) -> CubicSpline:
    """F_l(q) = integral r^2 R(r) j_l(q r) dr (bohr units) for R on a uniform grid in Angstrom."""
    r = np.asarray(r_ang) / BOHR
    f = np.asarray(values) * BOHR**1.5
    q = _qgrid(qmax)
    integrand = r**2 * f * spherical_jn(l, np.outer(q, r))
    dr = np.full_like(r, r[1] - r[0])
    return CubicSpline(q, qe_simpson(integrand, dr))


def projector_transform(l: int, r: np.ndarray, rab: np.ndarray, rbeta: np.ndarray, kkbeta: int, qmax: float):
    """B_l(q) = integral r * (r beta(r)) j_l(q r) dr on the UPF's own mesh, as QE's init_us_1 does."""
    q = _qgrid(qmax)
    integrand = rbeta[:kkbeta] * r[:kkbeta] * spherical_jn(l, np.outer(q, r[:kkbeta]))
    return CubicSpline(q, qe_simpson(integrand, rab[:kkbeta]))


def bloch_coefficients(
    ls: list[int], splines: list[CubicSpline], q: np.ndarray, tau: np.ndarray, volume: float
) -> np.ndarray:
    """Plane-wave coefficients (npw, sum 2l+1) of the Bloch sums of F_l Y_lm centred at tau."""
    qnorm = np.linalg.norm(q, axis=1)
    phase = np.exp(-1j * (q @ tau)) * (4 * np.pi / np.sqrt(volume))
    ylm = {l: real_ylm(l, q) for l in set(ls)}
    columns = []
    for l, spline in zip(ls, splines, strict=True):
        radial = spline(qnorm) * phase * (-1j) ** l
        columns.append(radial[:, None] * ylm[l])
    return np.concatenate(columns, axis=1)


def spherical_bessels(lmax: int, x: np.ndarray, sin_cos: tuple | None = None) -> list[np.ndarray]:
    """[j_0(x), ..., j_lmax(x)] for x >= 0: one sin and cos, upward recurrence where it is stable
    (x > l + 1), the power series for the few smaller arguments of l >= 1 (~10x faster than scipy).
    The tables are ~10^6 points: operations run in place to spare temporaries. ``sin_cos``: sin(x)
    and cos(x) if already known (``outer_sin_cos``); they are overwritten."""
    x = np.asarray(x, dtype=np.float64)
    tiny = x <= 1e-8  # j_0 = 1 - x^2/6 is 1 in double precision there
    inv = np.where(tiny, 1.0, x)
    s, c = (np.sin(inv), np.cos(inv)) if sin_cos is None else sin_cos
    np.reciprocal(inv, out=inv)
    out = [np.multiply(s, inv, out=s)]  # sin(x)/x is exact to rounding elsewhere
    out[0][tiny] = 1.0
    if lmax >= 1:
        out.append(np.multiply(np.subtract(out[0], c, out=c), inv, out=c))
    for n in range(1, lmax):
        nxt = np.multiply(inv, 2 * n + 1)
        nxt *= out[n]
        nxt -= out[n - 1]
        out.append(nxt)
    flat = x.reshape(-1)
    near = np.flatnonzero(flat <= lmax + 1.0) if lmax else np.zeros(0, dtype=np.int64)
    small = flat[near]
    for l in range(1, lmax + 1):
        mine = small <= l + 1.0
        if mine.any():
            out[l].reshape(-1)[near[mine]] = _bessel_series(l, small[mine])
    return out


def outer_bessels(lmax: int, u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """``spherical_bessels`` of np.outer(u, v), with u a uniform grid from 0."""
    return spherical_bessels(lmax, np.outer(u, v), outer_sin_cos(u, v))


def outer_sin_cos(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sin and cos of np.outer(u, v) for u = 0, h, 2h, ...: with u_k = (B I + m) h, angle addition
    from sin/cos of (B I h) v and (m h) v needs ~2 sqrt(len(u)) rows of sines instead of len(u),
    at an error of a few ulp (libm sin and cos are most of the cost of the Bessel tables)."""
    n = len(u)
    h = float(u[1] - u[0]) if n > 1 else 0.0
    if n < 16 or not np.allclose(u, np.arange(n) * h, rtol=0.0, atol=1e-12 * max(abs(h) * n, 1.0)):
        x = np.outer(u, v)
        return np.sin(x), np.cos(x)
    block = int(np.sqrt(n))
    fine = np.outer(np.arange(block) * h, v)
    coarse = np.outer(np.arange(0, n, block) * h, v)
    sf, cf, sc, cc = np.sin(fine), np.cos(fine), np.sin(coarse), np.cos(coarse)
    shape = (len(coarse) * block, len(v))
    s = np.multiply(sc[:, None, :], cf[None, :, :]).reshape(shape)
    s += np.multiply(cc[:, None, :], sf[None, :, :]).reshape(shape)
    c = np.multiply(cc[:, None, :], cf[None, :, :]).reshape(shape)
    c -= np.multiply(sc[:, None, :], sf[None, :, :]).reshape(shape)
    return s[:n], c[:n]


def _bessel_series(l: int, x: np.ndarray) -> np.ndarray:
    """j_l(x) = x^l / (2l+1)!! sum_k (-x^2/2)^k / (k! (2l+3)(2l+5)...(2l+2k+1)), for x <= l + 1."""
    half = x * x
    half *= -0.5
    term = np.ones_like(x)
    total = np.ones_like(x)
    # |term| is largest where |x| is: follow that bound as a scalar instead of scanning the array.
    largest, bound = float(np.abs(half).max(initial=0.0)), 1.0
    for k in range(1, 40):
        factor = 1.0 / (k * (2 * l + 2 * k + 1))
        term *= half
        term *= factor
        total += term
        bound *= largest * factor
        if bound < 1e-17:
            break
    double_factorial = float(np.prod(np.arange(1, 2 * l + 2, 2)))
    total *= x**l / double_factorial
    return total


def spherical_bessel(l: int, x: np.ndarray) -> np.ndarray:
    """j_l(x) for x >= 0 (see spherical_bessels)."""
    return spherical_bessels(l, x)[l]


def simpson_weights(n: int, step: float) -> np.ndarray:
    """Composite Simpson weights on n uniform points (n odd)."""
    if n % 2 == 0:
        raise ValueError("Simpson's rule needs an odd number of points")
    w = np.full(n, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return w * step / 3.0


def orbital_transforms(orbitals, q: np.ndarray) -> np.ndarray:
    """F_l(q) (n_orbitals, len(q)) of basis orbitals (uniform grid from 0, Angstrom) in bohr units."""
    out = np.empty((len(orbitals), len(q)))
    meshes: dict = {}
    for n, o in enumerate(orbitals):
        meshes.setdefault((len(o.r), float(o.r[1])), []).append(n)
    for members in meshes.values():
        r = np.asarray(orbitals[members[0]].r, dtype=np.float64) / BOHR
        m = len(r) - (1 - len(r) % 2)  # Simpson on an odd number of points; R vanishes at the end
        w = np.zeros(len(r))
        w[:m] = simpson_weights(m, r[1] - r[0])
        # One recurrence gives every l at once: the sin/cos of q r are most of the cost.
        bessels = outer_bessels(max(orbitals[n].l for n in members), q, r)
        for n in members:
            values = np.asarray(orbitals[n].values, dtype=np.float64) * BOHR**1.5
            out[n] = bessels[orbitals[n].l] @ (w * r**2 * values)
    return out


def projector_transforms(upf, q: np.ndarray) -> np.ndarray:
    """B_l(q) = integral r (r beta) j_l(q r) dr (n_beta, len(q)) on the UPF mesh, QE's Simpson rule."""
    kkbeta = max((b.cutoff_index for b in upf.betas), default=0)
    r, rab = upf.r[:kkbeta], upf.rab[:kkbeta]
    out = np.empty((len(upf.betas), len(q)))
    if not upf.betas:
        return out
    bessels = outer_bessels(max(b.l for b in upf.betas), q, r)
    for n, b in enumerate(upf.betas):
        out[n] = qe_simpson(b.values[:kkbeta] * r * bessels[b.l], rab)
    return out
