"""SIESTA split-valence: extra zetas cut out of a confined orbital.

Lengths in bohr. For a split norm s, r_s is the radius beyond which the first-zeta orbital
phi1 carries norm s. Inside r_s, phi2(r) = r^l (a - b r^2) with value and slope equal to
phi1's at r_s; the new radial function is phi1 - phi2 inside r_s and exactly zero beyond,
with a continuous value and slope at r_s. It is returned unnormalised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import cumulative_trapezoid

from slem.basis.errors import BasisGenerationError

Radial = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Split:
    l: int
    r_s: float  # bohr
    a: float
    b: float

    def apply(self, r: np.ndarray, phi1: np.ndarray) -> np.ndarray:
        inside = r < self.r_s
        return np.where(inside, phi1 - r**self.l * (self.a - self.b * r**2), 0.0)


def split_radius(radial: Radial, r_c: float, split_norm: float, spacing: float = 1e-3) -> float:
    """Radius beyond which `radial` (normalised inside r_c) holds the norm `split_norm`."""
    if not 0.0 < split_norm < 1.0:
        raise BasisGenerationError(
            f"split norm {split_norm} must lie strictly between 0 and 1 (SIESTA uses 0.15)"
        )
    r = np.linspace(0.0, r_c, int(np.ceil(r_c / spacing)) + 1)
    inner = cumulative_trapezoid((radial(r) * r) ** 2, r, initial=0.0)
    tail = inner[-1] - inner  # decreasing from 1 to 0
    r_s = float(np.interp(split_norm, tail[::-1], r[::-1]))
    if r_s < 0.05 * r_c:
        raise BasisGenerationError(
            f"split norm {split_norm} puts the split radius at {r_s:.3f} bohr, too close to the nucleus; "
            "use a smaller split norm"
        )
    return r_s


def make_split(l: int, radial: Radial, derivative: Radial, r_c: float, split_norm: float) -> Split:
    r_s = split_radius(radial, r_c, split_norm)
    at = np.array([r_s])
    value = float(radial(at)[0])
    slope = float(derivative(at)[0])
    # R = r^l (a - b r^2) and R' = l r^(l-1) (a - b r^2) - 2 b r^(l+1), solved at r_s.
    b = (l * value / r_s - slope) / (2.0 * r_s ** (l + 1))
    a = value / r_s**l + b * r_s**2
    return Split(l, r_s, a, b)
