"""Soft confinement (SIESTA form) and the energy-shift choice of the confinement radius.

Lengths in bohr, energies in Ha. The hard wall at r_c already makes every orbital vanish
there; the soft potential V0 exp(-(r_c - r_i)/(r - r_i)) / (r_c - r), switched on at
r_i = inner_fraction * r_c, bends the tail down before the wall so that R(r) reaches zero
smoothly instead of with a kink.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from slem.basis.errors import RadiusTooSmallError
from slem.units import BOHR_ANGSTROM, HARTREE_EV


@dataclass(frozen=True)
class SoftConfinement:
    v0: float = 20.0  # Ha (40 Ry, SIESTA's default)
    inner_fraction: float = 0.9

    def potential(self, r: np.ndarray, r_c: float) -> np.ndarray:
        r_i = self.inner_fraction * r_c
        out = np.zeros_like(r)
        if self.v0 == 0.0:
            return out
        inside = (r > r_i) & (r < r_c)
        x = r[inside]
        out[inside] = self.v0 * np.exp(-(r_c - r_i) / (x - r_i)) / (r_c - x)
        return out

    def as_dict(self) -> dict:
        return {"v0_ry": 2.0 * self.v0, "inner_fraction": self.inner_fraction}


def radius_for_shift(
    eigenvalue: Callable[[float], float],
    reference: float,
    shift: float,
    r_max: float,
    l: int,
    r_min: float = 1.0,
) -> float:
    """Radius (bohr) at which the confined eigenvalue lies `shift` (Ha) above the free one.

    The confined eigenvalue falls monotonically with r_c towards `reference`, so a bracketing
    root search on [r_min, r_max] finds the single crossing.
    """
    target = lambda r_c: eigenvalue(r_c) - reference - shift
    hi = target(r_max)
    if hi > 0.0:
        raise RadiusTooSmallError(
            f"l={l}: even at r_c={r_max * BOHR_ANGSTROM:.2f} Angstrom the eigenvalue is more than "
            f"{shift * HARTREE_EV:.3f} eV above the free atom's; use a larger energy shift or explicit radii"
        )
    lo = target(r_min)
    if lo < 0.0:
        return r_min
    return float(brentq(target, r_min, r_max, xtol=1e-4))
