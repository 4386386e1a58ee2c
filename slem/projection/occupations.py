"""Smeared occupations as pw.x defines them (QE ``wgauss``/``w0gauss``) and the Fermi level they imply.

``x = (E_F - e) / degauss``; pw.x's occupation of a state is ``f(x)`` per spin, so a band holds ``2 f``
electrons. Methfessel-Paxton (order 1, QE's ``smearing='mp'``) gives occupations below 0 and above 1; they
are kept, as pw.x keeps them, because the electron count and band energy are only consistent that way.
Energies and widths may be in any unit as long as they share it.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.special

SQRT_PI = np.sqrt(np.pi)
# The names pw.x 6.7 writes into data-file-schema.xml (<smearing>), whatever alias the input used.
SMEARING_KINDS = ("gaussian", "mp", "mv", "fd")
SMEARING_ALIASES = {
    "gaussian": "gaussian",
    "gauss": "gaussian",
    "mp": "mp",
    "m-p": "mp",
    "methfessel-paxton": "mp",
    "mv": "mv",
    "m-v": "mv",
    "cold": "mv",
    "marzari-vanderbilt": "mv",
    "fd": "fd",
    "f-d": "fd",
    "fermi-dirac": "fd",
}
ELECTRON_COUNT_TOLERANCE = 1e-11
# A gap at least twice this many smearing widths wide gets E_F in its middle, where every occupation is 0 or 1
# to ~1e-25 (Gaussian tails at 8 widths), whatever the smearing.
GAP_EDGE_WIDTHS = 8.0


def smearing_kind(name: str) -> str:
    """QE's canonical name (gaussian, mp, mv, fd) for any spelling pw.x accepts."""
    kind = SMEARING_ALIASES.get(name.strip().lower())
    if kind is None:
        raise ValueError(
            f"smearing {name!r} is not one pw.x defines; use gaussian, mp (methfessel-paxton), "
            "mv (marzari-vanderbilt, cold) or fd (fermi-dirac)"
        )
    return kind


def occupation(x: np.ndarray, kind: str) -> np.ndarray:
    """Occupation per spin channel, f(x) with x = (E_F - e) / degauss (QE wgauss)."""
    x = np.asarray(x, dtype=np.float64)
    if kind == "gaussian":
        return 0.5 * scipy.special.erfc(-x)
    if kind == "mp":
        # first-order Hermite correction; the exponent is capped as in QE to avoid underflow warnings
        return 0.5 * scipy.special.erfc(-x) + x * np.exp(-np.minimum(x * x, 200.0)) / (2 * SQRT_PI)
    if kind == "mv":
        # erfc form of QE's 0.5 erf(xp) + 0.5: the same function without cancellation in the empty tail
        xp = x - 1 / np.sqrt(2.0)
        return 0.5 * scipy.special.erfc(-xp) + np.exp(-np.minimum(xp * xp, 200.0)) / np.sqrt(2 * np.pi)
    if kind == "fd":
        return scipy.special.expit(x)
    raise ValueError(f"unknown smearing kind {kind!r}; expected one of {SMEARING_KINDS}")


def occupation_derivative(x: np.ndarray, kind: str) -> np.ndarray:
    """df/dx (QE w0gauss): the broadened delta function of the density of states."""
    x = np.asarray(x, dtype=np.float64)
    gauss = np.exp(-np.minimum(x * x, 200.0)) / SQRT_PI
    if kind == "gaussian":
        return gauss
    if kind == "mp":
        return gauss * (1.5 - x * x)
    if kind == "mv":
        xp = x - 1 / np.sqrt(2.0)
        return np.exp(-np.minimum(xp * xp, 200.0)) / SQRT_PI * (2.0 - np.sqrt(2.0) * x)
    if kind == "fd":
        f = scipy.special.expit(x)
        return f * (1.0 - f)
    raise ValueError(f"unknown smearing kind {kind!r}; expected one of {SMEARING_KINDS}")


def electron_count(
    eps: np.ndarray, weights: np.ndarray, e_fermi: float, width: float, kind: str, degeneracy: float = 2.0
) -> float:
    """g sum_k w_k sum_n f((E_F - e_nk) / width) for eigenvalues (n_k, n_bands) and weights summing to 1;
    g = 2 for spin-degenerate bands, 1 when the bands of both spin channels are listed side by side."""
    return float(degeneracy * weights @ occupation((e_fermi - eps) / width, kind).sum(axis=1))


def fermi_level(
    eps: np.ndarray, weights: np.ndarray, n_electrons: float, width: float, kind: str, degeneracy: float = 2.0
) -> float:
    """E_F with electron_count(E_F) = n_electrons, to ELECTRON_COUNT_TOLERANCE.

    Brent's method on a bracket from below the lowest to above the highest band, as pw.x's efermig
    bisects; for Methfessel-Paxton the count is not monotonic and, as in pw.x, one root is taken. A gapped
    spectrum (an insulator run with smearing) gets the middle of its gap instead (``gap_midpoint``)."""
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    capacity = degeneracy * eps.shape[1]
    if n_electrons >= capacity:
        raise ValueError(f"{n_electrons} electrons do not fit into {eps.shape[1]} bands")
    middle = gap_midpoint(eps, weights, n_electrons, width, degeneracy)
    if middle is not None:
        return middle
    low, high = float(eps.min()) - 20 * width, float(eps.max()) + 20 * width

    def excess(e_fermi: float) -> float:
        return electron_count(eps, weights, e_fermi, width, kind, degeneracy) - n_electrons

    e_fermi = scipy.optimize.brentq(excess, low, high, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    error = excess(e_fermi)
    if abs(error) > ELECTRON_COUNT_TOLERANCE * max(1.0, n_electrons):
        raise ValueError(
            f"the Fermi level solve ended {error:.2e} electrons off; the smearing width {width:g} is too "
            "small for the k-mesh's eigenvalue spacing in floating point: use a larger degauss"
        )
    return float(e_fermi)


def gap_midpoint(
    eps: np.ndarray, weights: np.ndarray, n_electrons: float, width: float, degeneracy: float = 2.0
) -> float | None:
    """The middle of the gap above the n_electrons-th electron, or None when there is no gap of at least
    2 ``GAP_EDGE_WIDTHS`` smearing widths there (a metal, or an insulator smeared across its gap).

    Every E_F inside such a gap gives the electron count, and the count's roots also include points a few
    widths from a band edge: cold smearing (mv, mp) overshoots to f > 1 below E_F and undershoots above, so
    a root-finder can stop just above the valence edge, where one channel's top states lose occupation and
    the other's gain it. Monolayer CrI3 (gap 1.18 eV, mv 0.068 eV) then had a projected moment of 5.981
    instead of pw.x's 6.000 mu_B. ``weights`` sum to 1."""
    flat = eps.ravel()
    order = np.argsort(flat, kind="stable")
    filled = np.cumsum(degeneracy * np.repeat(weights, eps.shape[1])[order])
    tolerance = ELECTRON_COUNT_TOLERANCE * max(1.0, n_electrons)
    last = int(np.searchsorted(filled, n_electrons - tolerance))
    if last + 1 >= flat.size or abs(filled[last] - n_electrons) > tolerance:
        return None  # the T = 0 filling of n_electrons ends inside a band at some k
    homo, lumo = float(flat[order[last]]), float(flat[order[last + 1]])
    if lumo - homo < 2 * GAP_EDGE_WIDTHS * width:
        return None
    return 0.5 * (homo + lumo)
