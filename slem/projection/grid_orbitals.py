"""Orbitals R(r) Y_lm evaluated at grid points, for the local-potential quadrature.

Each species' radial functions are one vector-valued cubic spline on the basis file's radial grid
(bohr units), strictly zero beyond each orbital's cutoff. Orbitals are split into radius groups (a
DZP second zeta reaches about half as far as the first): the quadrature treats each group's sphere
on its own, so points where a short orbital is exactly zero are not multiplied.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from slem.basis.orbital import ElementBasis

from .radial import BOHR, real_ylms

# An orbital joins the group of a longer one when its cutoff is at least this fraction of the
# group's radius (volume ratio ~0.34): below it, a separate sphere saves more than its overhead.
GROUP_RADIUS_RATIO = 0.7
# Points per step of the per-point work: the temporaries stay in cache and in memory the allocator
# reuses, where temporaries for every point at once cost more in page faults than in arithmetic.
CHUNK_POINTS = 8192


class GridOrbitals:
    """One species' orbitals R(r) Y_lm as a vector-valued cubic spline (bohr units)."""

    def __init__(self, basis: ElementBasis) -> None:
        self.ls = [o.l for o in basis.orbitals]
        self.cutoffs = np.array([o.cutoff / BOHR for o in basis.orbitals])
        self.cutoff = float(self.cutoffs.max())
        r = np.asarray(basis.orbitals[0].r, dtype=np.float64) / BOHR
        for o in basis.orbitals:
            if len(o.r) != len(r) or not np.allclose(np.asarray(o.r) / BOHR, r):
                raise ValueError(f"{basis.element}: orbitals must share one radial grid")
        values = np.stack([np.asarray(o.values, dtype=np.float64) * BOHR**1.5 for o in basis.orbitals], 1)
        values[r[:, None] >= self.cutoffs[None, :]] = 0.0
        spline = CubicSpline(r, values)
        self._x0, self._h, self._coef = r[0], r[1] - r[0], spline.c  # (4, intervals, n_radial)
        self._last = len(r) - 2
        self._tables: dict[bytes, np.ndarray] = {}
        self.n_orbitals = sum(2 * l + 1 for l in self.ls)
        first = np.cumsum([0, *(2 * l + 1 for l in self.ls)])
        groups: list[list[int]] = []
        for n in np.argsort(-self.cutoffs, kind="stable"):
            if groups and self.cutoffs[n] >= GROUP_RADIUS_RATIO * self.cutoffs[groups[-1][0]]:
                groups[-1].append(int(n))
            else:
                groups.append([int(n)])
        # (radius, radial function indices, their columns in the block) per group, longest first
        self.groups = [
            (
                float(self.cutoffs[g[0]]),
                np.array(sorted(g)),
                np.concatenate([np.arange(first[n], first[n + 1]) for n in sorted(g)]),
            )
            for g in groups
        ]

    def radial(self, dist: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
        which = np.arange(len(self.ls)) if which is None else np.asarray(which)
        key = which.tobytes()
        if key not in self._tables:
            # (interval, power, function): one gather fetches all four coefficients of a point
            self._tables[key] = np.ascontiguousarray(self._coef[:, :, which].transpose(1, 0, 2))
        idx = np.minimum(((dist - self._x0) / self._h).astype(np.int64), self._last)
        t = (dist - (self._x0 + idx * self._h))[:, None]
        c = np.take(self._tables[key], idx, axis=0)
        out = c[:, 0] * t
        out += c[:, 1]
        out *= t
        out += c[:, 2]
        out *= t
        out += c[:, 3]
        out[dist[:, None] >= self.cutoffs[None, which]] = 0.0
        return out

    def values(self, vectors: np.ndarray, group: int | None = None) -> np.ndarray:
        """Orbital values (M, n_columns) at displacement vectors (M, 3) from the atom, bohr^-3/2:
        all orbitals, or those of one radius group (in the order of its columns)."""
        which = np.arange(len(self.ls)) if group is None else self.groups[group][1]
        out = np.empty((len(vectors), sum(2 * self.ls[n] + 1 for n in which)))
        for start in range(0, len(vectors), CHUNK_POINTS):
            part = vectors[start : start + CHUNK_POINTS]
            dist = np.sqrt(np.einsum("ij,ij->i", part, part))
            radial = self.radial(dist, which)
            ylm = real_ylms({self.ls[n] for n in which}, part, dist)
            column = 0
            for k, n in enumerate(which):
                width = 2 * self.ls[n] + 1
                target = out[start : start + len(part), column : column + width]
                np.multiply(radial[:, k, None], ylm[self.ls[n]], out=target)
                column += width
        return out
