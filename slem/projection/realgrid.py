"""Local-potential blocks <phi_i(r - tau_i)|V|phi_j(r - tau_j - R)> by quadrature on the pw.x FFT grid.

Each orbital vanishes beyond its cutoff, so only grid points inside both spheres contribute: the
points of atom i's sphere are found once, and each neighbour (j, R) selects the lens it shares
with it. V is used at the grid points exactly as pp.x wrote it (no interpolation), so the cost is
(number of pairs) x (lens points) x n_i x n_j and does not depend on k-points or plane waves.

Orbitals are split into radius groups (a DZP second zeta reaches about half as far as the first):
each group has its own spheres and lenses, so points where a short orbital is exactly zero are
never multiplied. The sums are the same; only their order changes.

The quadrature is the plane-wave Galerkin integral up to aliasing of the orbital products beyond
the grid's Nyquist frequency (the egg-box effect); docs/projection.md records its size.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from slem.basis.orbital import ElementBasis

from .radial import BOHR, real_ylms

MEMORY_BUDGET_BYTES = 2.0e9  # orbital values kept on the atoms' spheres
# An orbital joins the group of a longer one when its cutoff is at least this fraction of the
# group's radius (volume ratio ~0.34): below it, a separate lens saves more than its overhead.
GROUP_RADIUS_RATIO = 0.7
# Points per step of the per-point work on a sphere: the temporaries stay in cache and in memory
# the allocator reuses, where whole-sphere temporaries cost more in page faults than in arithmetic.
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


class Sphere:
    """Grid points within a radius of an atom, stored as grid rows along the third axis.

    Points are ordered by (n1, n2, n3); each row (n1, n2) holds a contiguous run of n3. The lens
    shared with a neighbour is then an intersection of runs: no distance tests and no lookups
    per point, one table lookup per row."""

    def __init__(self, cell: np.ndarray, tau: np.ndarray, radius: float, potential: np.ndarray) -> None:
        shape = np.asarray(potential.shape)
        frac = np.linalg.solve(cell.T, tau)
        half = radius * np.linalg.norm(np.linalg.inv(cell), axis=0)  # fractional half-widths
        lo = np.ceil((frac - half) * shape).astype(np.int64)
        hi = np.floor((frac + half) * shape).astype(np.int64)
        n1, n2 = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        n1, n2 = n1.ravel(), n2.ravel()
        # Along a row, |p + n3 c|^2 < radius^2 is a quadratic in n3: solve it for the run, widen
        # it by one point each side against rounding, then test every candidate as a point.
        p = np.outer(n1 / shape[0], cell[0]) + np.outer(n2 / shape[1], cell[1]) - tau
        c = cell[2] / shape[2]
        pc, cc = p @ c, c @ c
        disc = pc * pc - cc * (np.einsum("ij,ij->i", p, p) - radius * radius)
        row = disc > 0
        root = np.sqrt(disc[row])
        first = np.floor((-pc[row] - root) / cc).astype(np.int64)
        count = np.ceil((-pc[row] + root) / cc).astype(np.int64) - first + 1
        n1, n2, p = n1[row], n2[row], p[row]
        row_base = ((n1 % shape[0]) * shape[1] + n2 % shape[1]) * shape[2]  # flat index of n3 = 0
        rels, flats, thirds, kept = [], [], [], []
        step = max(1, CHUNK_POINTS // int(count.max(initial=1)))
        for a in range(0, len(count), step):
            cnt = count[a : a + step]
            starts = np.cumsum(cnt) - cnt
            n3 = np.arange(cnt.sum()) + np.repeat(first[a : a + step] - starts, cnt)
            rel = np.repeat(p[a : a + step], cnt, axis=0) + np.outer(n3 / shape[2], cell[2])
            keep = np.einsum("ij,ij->i", rel, rel) < radius * radius
            rels.append(rel[keep])
            flats.append(np.repeat(row_base[a : a + step], cnt)[keep] + n3[keep] % shape[2])
            thirds.append(n3[keep])
            kept.append(np.add.reduceat(keep, starts, dtype=np.int64) if len(cnt) else cnt)
        self.rel = np.concatenate(rels) if rels else np.zeros((0, 3))
        self.v = potential.ravel()[np.concatenate(flats)] if flats else np.zeros(0)
        kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        filled = kept > 0
        self.row_length = kept[filled]
        self.row_start = (np.cumsum(kept) - kept)[filled]
        self.row_ij = np.column_stack([n1, n2])[filled]
        self.row_first = np.concatenate(thirds)[self.row_start] if thirds else np.zeros(0, dtype=np.int64)
        # Row number of each (n1, n2) in the bounding box, -1 where the sphere has no points.
        self.box_lo = lo[:2]
        self.row_table = np.full((hi[0] - lo[0] + 1, hi[1] - lo[1] + 1), -1, dtype=np.int64)
        self.row_table[tuple((self.row_ij - lo[:2]).T)] = np.arange(len(self.row_ij))

    def lens(self, other: Sphere, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Runs of points this sphere shares with ``other`` moved by the integer grid vector
        ``shift``: (first index here, first index in ``other``, length) per run."""
        at = self.row_ij - shift[:2] - other.box_lo
        size = other.row_table.shape
        inside = np.flatnonzero(np.all((at >= 0) & (at < size), axis=1))
        theirs = other.row_table[at[inside, 0], at[inside, 1]]
        mine = inside[theirs >= 0]
        theirs = theirs[theirs >= 0]
        start_mine = self.row_first[mine]
        start_theirs = other.row_first[theirs] + shift[2]
        begin = np.maximum(start_mine, start_theirs)
        end = np.minimum(start_mine + self.row_length[mine], start_theirs + other.row_length[theirs])
        keep = end > begin
        a = (self.row_start[mine] + begin - start_mine)[keep]
        b = (other.row_start[theirs] + begin - start_theirs)[keep]
        return a, b, (end - begin)[keep]


class _Buffers:
    """Scratch arrays reused across lenses: fresh multi-megabyte arrays for every pair cost more
    in page faults than the gathers and products that fill them."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        size = int(np.prod(shape))
        if name not in self._arrays or self._arrays[name].size < size:
            self._arrays[name] = np.empty(max(size, 2 * self._arrays.get(name, np.empty(0)).size), dtype)
        return self._arrays[name][:size].reshape(shape)

    def indices(self, name: str, first: np.ndarray, length: np.ndarray) -> np.ndarray:
        """The points of runs (first, length) as one index array: a cumulative sum of steps that
        are 1 inside a run and jump at its start."""
        out = self.get(name, (int(length.sum()),), np.int64)
        if not len(out):
            return out
        starts = np.cumsum(length) - length
        out.fill(1)
        out[starts] = first - np.concatenate([[1], first[:-1] + length[:-1] - 1])
        out[0] = first[0]
        return np.cumsum(out, out=out)


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
    on each atom's spheres are kept while they fit ``memory_budget``; groups beyond it are
    evaluated again on each lens, which is slower but needs no memory."""
    shape = np.asarray(potential.shape)
    volume_element = abs(np.linalg.det(cell)) / potential.size
    canonical: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for key in keys:
        i, j, *r = key
        if i < j or (i == j and tuple(r) >= (0, 0, 0)):
            canonical.setdefault(i, []).append(key)
    spheres: dict[tuple[int, int], Sphere] = {}
    cache: dict[tuple[int, int], np.ndarray] = {}
    used = 0.0

    def sphere_of(atom: int, group: int) -> tuple[Sphere, np.ndarray | None]:
        nonlocal used
        if (atom, group) not in spheres:
            orb = orbitals[symbols[atom]]
            radius, _, columns = orb.groups[group]
            sphere = spheres[atom, group] = Sphere(cell, positions[atom], radius, potential)
            size = sphere.rel.shape[0] * 8 * len(columns)
            if used + size <= memory_budget:
                cache[atom, group] = orb.values(sphere.rel, group)
                used += size
        return spheres[atom, group], cache.get((atom, group))

    buffers = _Buffers()
    out: dict[tuple[int, int, int, int, int], np.ndarray] = {}
    for i, own in canonical.items():
        orb_i = orbitals[symbols[i]]
        left = []
        for g, (radius_g, _, rows) in enumerate(orb_i.groups):
            sphere_i, phi_i = sphere_of(i, g)
            if phi_i is None:
                phi_i = orb_i.values(sphere_i.rel, g)
            left.append((radius_g, rows, sphere_i, phi_i * (sphere_i.v * volume_element)[:, None]))
        for key in own:
            j = key[1]
            orb_j = orbitals[symbols[j]]
            d = positions[j] + np.asarray(key[2:]) @ cell - positions[i]
            distance = float(np.linalg.norm(d))
            shift = np.asarray(key[2:], dtype=np.int64) * shape
            block = np.zeros((orb_i.n_orbitals, orb_j.n_orbitals))
            for radius_g, rows, sphere_i, weighted in left:
                for h, (radius_h, _, cols) in enumerate(orb_j.groups):
                    if distance >= radius_g + radius_h:
                        continue  # no grid point lies in both spheres: the products are all zero
                    sphere_j, phi_j = sphere_of(j, h)
                    a, b, length = sphere_i.lens(sphere_j, shift)
                    mine = buffers.indices("mine", a, length)
                    n = len(mine)
                    if phi_j is None:
                        right = orb_j.values(np.take(sphere_i.rel, mine, axis=0) - d, h)
                    else:
                        theirs = buffers.indices("theirs", b, length)
                        # mode="clip": with "raise" numpy gathers into a temporary and then copies
                        right = np.take(phi_j, theirs, 0, buffers.get("right", (n, len(cols))), "clip")
                    here = np.take(weighted, mine, 0, buffers.get("left", (n, len(rows))), "clip")
                    block[np.ix_(rows, cols)] = here.T @ right
            mirror = (j, i, *(-x for x in key[2:]))
            if mirror == key:
                block = 0.5 * (block + block.T)
            out[key] = block
            out[mirror] = block.T
    return out
