"""Spin-unpolarised exchange-correlation for the radial pseudo-atom (Hartree atomic units).

Each functional is written once, as its energy density per volume f(n, sigma) with
sigma = |grad n|^2. The derivatives f_n and f_sigma come from the complex-step derivative
(Im f(x + ih) / h), which is exact to machine precision for analytic formulas and spares us
hand-derived PBE potentials. The GGA potential is then used in its weak form (see atom.py),
so no second derivative of the density is ever taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slem.basis.errors import BasisGenerationError


class UnsupportedFunctionalError(BasisGenerationError):
    """The UPF's exchange-correlation functional is not implemented here."""


# Below these densities the xc terms are dropped: the tail carries no weight but the GGA
# reduced gradients blow up there and only add noise.
_N_MIN = 1e-14
_N_MIN_GGA = 1e-9

_KAPPA = 0.804
_MU = 0.2195149727645171
_BETA = 0.06672455060314922
_GAMMA = (1.0 - np.log(2.0)) / np.pi**2


@dataclass(frozen=True)
class Functional:
    name: str  # "LDA-PZ", "LDA-PW92" or "PBE"
    correlation: str  # "PZ" or "PW92"
    gga: bool


def _rs(n):
    return (3.0 / (4.0 * np.pi * n)) ** (1.0 / 3.0)


def _ex_lda(n):
    return -0.75 * (3.0 / np.pi) ** (1.0 / 3.0) * n ** (1.0 / 3.0)


def _ec_pz(n):
    rs = _rs(n)
    high = 0.0311 * np.log(rs) - 0.048 + 0.0020 * rs * np.log(rs) - 0.0116 * rs
    low = -0.1423 / (1.0 + 1.0529 * np.sqrt(rs) + 0.3334 * rs)
    return np.where(np.real(rs) < 1.0, high, low)


def _ec_pw92(n):
    rs = _rs(n)
    a, a1, b1, b2, b3, b4 = 0.031091, 0.21370, 7.5957, 3.5876, 1.6382, 0.49294
    denom = 2.0 * a * (b1 * np.sqrt(rs) + b2 * rs + b3 * rs**1.5 + b4 * rs**2)
    return -2.0 * a * (1.0 + a1 * rs) * np.log(1.0 + 1.0 / denom)


def _f_pbe(n, sigma):
    kf = (3.0 * np.pi**2 * n) ** (1.0 / 3.0)
    s2 = sigma / (2.0 * kf * n) ** 2
    fx = 1.0 + _KAPPA - _KAPPA / (1.0 + _MU * s2 / _KAPPA)
    ec = _ec_pw92(n)
    ks = np.sqrt(4.0 * kf / np.pi)
    t2 = sigma / (2.0 * ks * n) ** 2
    a = (_BETA / _GAMMA) / (np.exp(-ec / _GAMMA) - 1.0)
    at2 = a * t2
    h = _GAMMA * np.log(1.0 + (_BETA / _GAMMA) * t2 * (1.0 + at2) / (1.0 + at2 + at2**2))
    return n * (_ex_lda(n) * fx + ec + h)


def parse_functional(text: str) -> Functional:
    """Map a UPF functional string ("SLA PW PBE PBE", "PBX PBC", "SLA PZ NOGX NOGC", "PBE")."""
    tokens = [t for t in text.upper().replace("-", " ").split() if t]
    known_pbe = {"PBE", "PBX", "PBC", "SLA", "PW"}
    if tokens == ["PBE"] or (tokens and set(tokens) <= known_pbe and {"PBX", "PBC", "PBE"} & set(tokens)):
        return Functional("PBE", "PW92", True)
    lda_tokens = set(tokens) - {"NOGX", "NOGC", "SLA"}
    if tokens in (["PZ"], ["LDA"]) or (lda_tokens == {"PZ"}):
        return Functional("LDA-PZ", "PZ", False)
    if lda_tokens == {"PW"}:
        return Functional("LDA-PW92", "PW92", False)
    raise UnsupportedFunctionalError(
        f"exchange-correlation functional {text.strip()!r} is not implemented for basis generation; "
        "supported are LDA (SLA PZ, SLA PW) and PBE (SLA PW PBX PBC); use a UPF made with one of them"
    )


def _energy_density(functional: Functional, n, sigma):
    if functional.gga:
        return _f_pbe(n, sigma)
    ec = _ec_pz(n) if functional.correlation == "PZ" else _ec_pw92(n)
    return n * (_ex_lda(n) + ec)


def xc_terms(
    functional: Functional, n: np.ndarray, dn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (f, f_n, 2 f_sigma dn/dr) for a spherical density n(r) with radial derivative dn.

    f is the energy per volume (Ha/bohr^3); f_n is the local potential (Ha). The third array g
    enters the GGA matrix elements as  integral g (R_a R_b)' r^2 dr  (zero for LDA).
    """
    f = np.zeros_like(n)
    fn = np.zeros_like(n)
    g = np.zeros_like(n)
    mask = n > _N_MIN
    nm = n[mask]
    sigma = dn[mask] ** 2
    if functional.gga:
        sigma = np.where(nm > _N_MIN_GGA, sigma, 0.0)
    h = 1e-30
    f[mask] = np.real(_energy_density(functional, nm, sigma))
    fn[mask] = np.imag(_energy_density(functional, nm + 1j * h * nm, sigma)) / (h * nm)
    if functional.gga:
        step = h * np.maximum(sigma, 1e-30)
        fs = np.imag(_energy_density(functional, nm, sigma + 1j * step)) / step
        g[mask] = np.where(nm > _N_MIN_GGA, 2.0 * fs * dn[mask], 0.0)
    return f, fn, g
