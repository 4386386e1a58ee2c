"""Local-potential blocks <phi_i(r - tau_i)|V|phi_j(r - tau_j - R)> by quadrature on the pw.x FFT grid,
tile by tile over the home cell.

Every grid point of all space is a point r of the home cell plus a lattice vector, and V is periodic,
so the quadrature over all space of phi_i(r - tau_i - L_a) V phi_j(r - tau_j - L_b), summed over
lattice translates, is a sum over the home cell's points of products of two orbital *images*
(i, L_a) and (j, L_b); it belongs to block (i, j, R = L_b - L_a). The home cell is cut into tiles of
a few grid points a side. On each tile, the values of every image that reaches it form one matrix
Phi (points x columns), and all products on the tile are one symmetric rank-k update
Phi^T diag(V) Phi, added into the blocks. V is used at the grid points exactly as pp.x wrote it.

Against a pair-by-pair sum over the lens two spheres share, this multiplies a few times more
(image pairs that reach a tile but meet on part of it only), but in dense BLAS products instead of
gathers of lens points, which were bound by memory traffic; and the working set is one tile's
matrices, with no orbital values kept per atom. Each grid point of all space lies in one tile of one
image, so every sphere's points are evaluated once, whatever the tiling. Orbitals of a radius group
(``GridOrbitals.groups``) join a tile only if the group's sphere reaches it. The sums are those of
the lens quadrature in another order; docs/projection.md records the egg-box error of the grid.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.blas import dsyrk

from .grid_orbitals import GridOrbitals

Key = tuple[int, int, int, int, int]

# Grid points per tile edge (~0.8-1 Angstrom at usual cutoffs): smaller tiles waste fewer products
# on image pairs that meet on part of a tile only, but add per-tile overhead; 8 was fastest for
# Si2, SiC and Si8 (6 and 10 were 10-30% slower).
TILE_POINTS = 8
CORNERS = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=np.float64)


class _Images:
    """Every periodic image (atom, lattice vector L) whose sphere can touch the home cell, and the
    values of its orbitals on a tile of the home cell's grid."""

    def __init__(self, cell: np.ndarray, positions: np.ndarray, symbols: list[str],
                 orbitals: dict[str, GridOrbitals], shape: np.ndarray) -> None:
        self.orbitals = orbitals
        self.kinds = sorted(set(symbols))
        self.step = cell / shape[:, None]  # grid step along each lattice vector (rows)
        inv = np.linalg.inv(cell)
        atoms, shifts = [], []
        for atom, (frac, symbol) in enumerate(zip(positions @ inv, symbols, strict=True)):
            half = orbitals[symbol].cutoff * np.linalg.norm(inv, axis=0)  # sphere's fractional half-widths
            lo, hi = np.floor(-frac - half).astype(np.int64), np.ceil(1.0 - frac + half).astype(np.int64)
            grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)],
                                        indexing="ij"), -1).reshape(-1, 3)
            centre = frac + grid
            touching = np.all((centre + half > 0.0) & (centre - half < 1.0), axis=1)
            shifts.append(grid[touching])
            atoms.append(np.full(int(touching.sum()), atom))
        self.atom, self.shift = np.concatenate(atoms), np.concatenate(shifts)
        self.centre = positions[self.atom] + self.shift @ cell
        self.kind = np.array([self.kinds.index(s) for s in symbols], dtype=np.int64)[self.atom]

    def tile_values(self, lo: np.ndarray, hi: np.ndarray):
        """(Phi, image of each column, orbital of each column) on grid points lo <= n < hi, points in
        C order; Phi is None when no sphere reaches the tile."""
        index = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)],
                                     indexing="ij"), -1).reshape(-1, 3)
        points = index @ self.step
        corners = (lo + CORNERS * (hi - 1 - lo)) @ self.step
        middle = corners.mean(axis=0)
        rho = float(np.sqrt(((corners - middle) ** 2).sum(axis=1)).max())
        distance = np.sqrt(((self.centre - middle) ** 2).sum(axis=1))
        columns, col_img, col_orb = [], [], []
        for k, kind in enumerate(self.kinds):
            orb = self.orbitals[kind]
            for g, (radius, _, cols) in enumerate(orb.groups):
                sel = np.flatnonzero((self.kind == k) & (distance < radius + rho))
                if not len(sel):
                    continue
                disp = (points[None, :, :] - self.centre[sel][:, None, :]).reshape(-1, 3)
                inside = np.flatnonzero(np.einsum("ij,ij->i", disp, disp) < radius * radius)
                values = np.zeros((len(sel), len(points), len(cols)))
                values.reshape(-1, len(cols))[inside] = orb.values(disp[inside], g)
                columns.append(values.transpose(1, 0, 2).reshape(len(points), -1))
                col_img.append(np.repeat(sel, len(cols)))
                col_orb.append(np.tile(cols, len(sel)))
        if not columns:
            return None, None, None
        return np.concatenate(columns, axis=1), np.concatenate(col_img), np.concatenate(col_orb)


class _KeyTable:
    """The blocks of ``keys`` as one flat array, addressed by (i, j, R) codes."""

    def __init__(self, keys: list[Key], n_orbitals: list[int], span: int) -> None:
        self.keys, self.span, self.n_atoms = keys, span, len(n_orbitals)
        arr = np.array(keys, dtype=np.int64).reshape(-1, 5)
        codes = self._code(arr[:, 0], arr[:, 1], arr[:, 2:])
        self.order = np.argsort(codes)
        self.sorted_codes = codes[self.order]
        sizes = np.array(n_orbitals, dtype=np.int64)
        self.cols = sizes[arr[:, 1]]
        self.offset = np.concatenate([[0], np.cumsum(sizes[arr[:, 0]] * self.cols)])
        self.values = np.zeros(int(self.offset[-1]))

    def _code(self, i: np.ndarray, j: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """One integer per (i, j, R); ``span`` bounds |R| componentwise."""
        width = 2 * self.span + 1
        r = shift + self.span
        return ((i * self.n_atoms + j) * width + r[..., 0]) * width * width + r[..., 1] * width + r[..., 2]

    def lookup(self, i: np.ndarray, j: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Index into ``keys`` of each (i, j, R), -1 where it is not a key."""
        if not len(self.sorted_codes):
            return np.full(np.broadcast_shapes(i.shape, j.shape, shift.shape[:-1]), -1)
        codes = self._code(i, j, shift)
        at = np.minimum(np.searchsorted(self.sorted_codes, codes), len(self.sorted_codes) - 1)
        return np.where(self.sorted_codes[at] == codes, self.order[at], -1)

    def add_upper(self, products: np.ndarray, col_img: np.ndarray, col_orb: np.ndarray,
                  images: _Images) -> None:
        """Add the upper triangle of a tile's column products: element (p, q) goes to the block of
        (image p, image q), row orb_p, column orb_q. Image pairs that are no key never meet."""
        used, where = np.unique(col_img, return_inverse=True)
        atom, shift = images.atom[used], images.shift[used]
        pair_key = self.lookup(atom[:, None], atom[None, :], shift[None, :, :] - shift[:, None, :])
        p, q = np.triu_indices(len(col_img))
        key = pair_key[where[p], where[q]]
        valid = key >= 0
        p, q, key = p[valid], q[valid], key[valid]
        np.add.at(self.values, self.offset[key] + col_orb[p] * self.cols[key] + col_orb[q], products[p, q])

    def blocks_with_mirrors(self) -> dict[Key, np.ndarray]:
        """Blocks from upper-triangle sums: element (p, q) of a tile went to one block and its mirror
        element (q, p) would have gone to the mirror block, so each block is its own sum plus its
        mirror's transposed (an onsite block: plus its own transpose, the diagonal once)."""
        out = {key: self.values[self.offset[k] : self.offset[k + 1]].reshape(-1, self.cols[k])
               for k, key in enumerate(self.keys)}
        for key in self.keys:
            mirror = (key[1], key[0], -key[2], -key[3], -key[4])
            if key < mirror:
                if mirror not in out:
                    raise ValueError(f"pair {key} comes without its mirror {mirror}")
                block = out[key] + out[mirror].T
                out[key], out[mirror] = block, block.T
            elif key == mirror:
                block = out[key] + out[key].T
                block[np.diag_indices_from(block)] *= 0.5
                out[key] = block
        return out


def _weighted_gram(phi: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Upper triangle of phi^T diag(weights) phi (the lower one stays zero), as two symmetric rank-k
    updates (BLAS syrk: half the multiplications of a general product), one over the points with
    positive weight and one over those with negative weight."""
    out = np.zeros((phi.shape[1], phi.shape[1]), order="F")
    for sign in (1.0, -1.0):
        rows = np.flatnonzero(sign * weights > 0)
        if len(rows):
            scaled = phi[rows] * np.sqrt(sign * weights[rows])[:, None]
            out = dsyrk(sign, scaled.T, beta=1.0, c=out, overwrite_c=1)
    return out


def local_potential_blocks(
    cell: np.ndarray,
    positions: np.ndarray,
    symbols: list[str],
    potential: np.ndarray,
    orbitals: dict[str, GridOrbitals],
    keys: list[Key],
    tile: int = TILE_POINTS,
) -> dict[Key, np.ndarray]:
    """Blocks (Ry) of the grid potential for the pair keys (i, j, Rx, Ry, Rz), which must come with
    their mirrors (j, i, -R); bohr units. Pairs whose spheres do not overlap have exactly zero blocks
    and need not be keys."""
    shape = np.array(potential.shape)
    images = _Images(cell, positions, symbols, orbitals, shape)
    longest_key = max((max(abs(x) for x in key[2:]) for key in keys), default=0)
    table = _KeyTable(keys, [orbitals[s].n_orbitals for s in symbols],
                      max(2 * int(np.abs(images.shift).max(initial=0)), longest_key) + 1)
    weight = potential * (abs(np.linalg.det(cell)) / potential.size)
    starts = np.stack(np.meshgrid(*[np.arange(0, n, tile) for n in shape], indexing="ij"), -1)
    for lo in starts.reshape(-1, 3):
        hi = np.minimum(lo + tile, shape)
        phi, col_img, col_orb = images.tile_values(lo, hi)
        if phi is not None:
            v = weight[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].reshape(-1)
            table.add_upper(_weighted_gram(phi, v), col_img, col_orb, images)
    return table.blocks_with_mirrors()
