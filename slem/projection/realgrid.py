"""Local-potential blocks <phi_i(r - tau_i)|V|phi_j(r - tau_j - R)> by quadrature on the pw.x FFT grid.

Each orbital vanishes beyond its cutoff, so only grid points inside both spheres contribute: the
points of atom i's sphere are found once, and each neighbour (j, R) selects the lens it shares
with it. V is used at the grid points exactly as pp.x wrote it (no interpolation), so the cost is
(number of pairs) x (lens points) x n_i x n_j and does not depend on k-points or plane waves.

The quadrature is the plane-wave Galerkin integral up to aliasing of the orbital products beyond
the grid's Nyquist frequency (the egg-box effect); docs/projection.md records its size.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from slem.basis.orbital import ElementBasis

from .radial import BOHR, real_ylm

MEMORY_BUDGET_BYTES = 2.0e9  # orbital values kept on the atoms' spheres
ROW_KEY = 1 << 31  # packs a grid row (n1, n2) into one integer


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
        self.n_orbitals = sum(2 * l + 1 for l in self.ls)

    def radial(self, dist: np.ndarray) -> np.ndarray:
        idx = np.minimum(((dist - self._x0) / self._h).astype(np.int64), self._last)
        t = (dist - (self._x0 + idx * self._h))[:, None]
        c = self._coef
        out = ((c[0, idx] * t + c[1, idx]) * t + c[2, idx]) * t + c[3, idx]
        out[dist[:, None] >= self.cutoffs[None, :]] = 0.0
        return out

    def values(self, vectors: np.ndarray) -> np.ndarray:
        """Orbital values (M, n_orbitals) at displacement vectors (M, 3) from the atom, bohr^-3/2."""
        radial = self.radial(np.linalg.norm(vectors, axis=1))
        ylm = {l: real_ylm(l, vectors) for l in set(self.ls)}
        return np.concatenate([radial[:, n, None] * ylm[l] for n, l in enumerate(self.ls)], axis=1)


class Sphere:
    """Grid points within an atom's cutoff, stored as grid rows along the third axis.

    Points are ordered by (n1, n2, n3); each row (n1, n2) holds a contiguous run of n3. The lens
    shared with a neighbour is then an intersection of runs: no distance tests and no lookups."""

    def __init__(self, cell: np.ndarray, tau: np.ndarray, radius: float, potential: np.ndarray) -> None:
        shape = np.asarray(potential.shape)
        frac = np.linalg.solve(cell.T, tau)
        half = radius * np.linalg.norm(np.linalg.inv(cell), axis=0)  # fractional half-widths
        lo = np.ceil((frac - half) * shape).astype(np.int64)
        hi = np.floor((frac + half) * shape).astype(np.int64)
        n2, n3 = np.meshgrid(np.arange(lo[1], hi[1] + 1), np.arange(lo[2], hi[2] + 1), indexing="ij")
        n23 = np.stack([n2.ravel(), n3.ravel()], axis=1)
        ints, rels = [], []
        # Plane by plane along the first axis keeps the temporary box small for big spheres.
        for n1 in range(lo[0], hi[0] + 1):
            plane = np.column_stack([np.full(len(n23), n1), n23])
            rel = (plane / shape) @ cell - tau
            keep = np.einsum("ij,ij->i", rel, rel) < radius * radius
            ints.append(plane[keep])
            rels.append(rel[keep])
        ints = np.concatenate(ints)
        self.rel = np.concatenate(rels)
        self.v = potential.ravel()[np.ravel_multi_index(tuple((ints % shape).T), potential.shape)]
        new_row = np.ones(len(ints), dtype=bool)
        new_row[1:] = np.any(ints[1:, :2] != ints[:-1, :2], axis=1)
        self.row_start = np.flatnonzero(new_row)
        self.row_length = np.diff(np.append(self.row_start, len(ints)))
        self.row_ij = ints[self.row_start, :2]
        self.row_first = ints[self.row_start, 2]

    def row_keys(self, shift: np.ndarray) -> np.ndarray:
        return (self.row_ij[:, 0] + shift[0]) * ROW_KEY + (self.row_ij[:, 1] + shift[1])

    def lens(self, other: Sphere, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices into this sphere's and ``other``'s points of the points they share when
        ``other`` is moved by the integer grid vector ``shift``."""
        _, mine, theirs = np.intersect1d(
            self.row_keys(np.zeros(2, dtype=np.int64)),
            other.row_keys(shift),
            assume_unique=True,
            return_indices=True,
        )
        start_mine = self.row_first[mine]
        start_theirs = other.row_first[theirs] + shift[2]
        begin = np.maximum(start_mine, start_theirs)
        end = np.minimum(start_mine + self.row_length[mine], start_theirs + other.row_length[theirs])
        keep = end > begin
        length = (end - begin)[keep]
        a = (self.row_start[mine] + begin - start_mine)[keep]
        b = (other.row_start[theirs] + begin - start_theirs)[keep]
        steps = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        return np.repeat(a, length) + steps, np.repeat(b, length) + steps


def local_potential_blocks(
    cell: np.ndarray,
    positions: np.ndarray,
    symbols: list[str],
    potential: np.ndarray,
    orbitals: dict[str, GridOrbitals],
    keys: list[tuple[int, int, int, int, int]],
    memory_budget: float = MEMORY_BUDGET_BYTES,
) -> dict[tuple[int, int, int, int, int], np.ndarray]:
    """Blocks (Ry) of the grid potential for the pair keys (i, j, Rx, Ry, Rz); bohr units.

    Keys must come with their mirrors (j, i, -R); only one of each is integrated. Orbital values
    on each atom's sphere are kept while they fit ``memory_budget``; atoms beyond it are
    evaluated again on each lens, which is slower but needs no memory."""
    shape = np.asarray(potential.shape)
    volume_element = abs(np.linalg.det(cell)) / potential.size
    canonical: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for key in keys:
        i, j, *r = key
        if i < j or (i == j and tuple(r) >= (0, 0, 0)):
            canonical.setdefault(i, []).append(key)
    spheres: dict[int, Sphere] = {}
    cache: dict[int, np.ndarray] = {}
    used = 0.0

    def sphere_of(atom: int) -> tuple[Sphere, np.ndarray | None]:
        nonlocal used
        if atom not in spheres:
            orb = orbitals[symbols[atom]]
            spheres[atom] = Sphere(cell, positions[atom], orb.cutoff, potential)
            size = spheres[atom].rel.shape[0] * 8 * orb.n_orbitals
            if used + size <= memory_budget:
                cache[atom] = orb.values(spheres[atom].rel)
                used += size
        return spheres[atom], cache.get(atom)

    out: dict[tuple[int, int, int, int, int], np.ndarray] = {}
    for i, own in canonical.items():
        sphere_i, phi_i = sphere_of(i)
        if phi_i is None:
            phi_i = orbitals[symbols[i]].values(sphere_i.rel)
        weighted = phi_i * (sphere_i.v * volume_element)[:, None]
        for key in own:
            j = key[1]
            sphere_j, phi_j = sphere_of(j)
            shift = np.asarray(key[2:], dtype=np.int64) * shape
            mine, theirs = sphere_i.lens(sphere_j, shift)
            if phi_j is None:
                d = positions[j] + np.asarray(key[2:]) @ cell - positions[i]
                right = orbitals[symbols[j]].values(sphere_i.rel[mine] - d)
            else:
                right = phi_j[theirs]
            block = weighted[mine].T @ right
            mirror = (j, i, *(-x for x in key[2:]))
            if mirror == key:
                block = 0.5 * (block + block.T)
            out[key] = block
            out[mirror] = block.T
    return out
