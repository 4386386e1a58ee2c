"""Pairs (i, j, R) within a range, and the transform of k-sampled matrices to blocks.

Blocks follow the project convention X_ij(R) = <phi_i(r - tau_i)|X|phi_j(r - tau_j - R)>,
bond tau_j + R.cell - tau_i, X(k) = sum_R X(R) exp(i k.R). Pairs are ordered like
``frame_from_blocks`` orders them (sorted by i, j, R), so packed arrays can go straight
into a Frame.
"""

from __future__ import annotations

import numpy as np

from .kmesh import lattice_shifts_within


def pairs_within(
    positions: np.ndarray,
    cell: np.ndarray,
    radii: np.ndarray,
    extra: float = 0.0,
    radii_j: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (P, 2), shifts (P, 3) and bond lengths (P,) with |bond| < r_i + r_j + extra.

    ``radii_j`` gives the second atom of a pair other radii (e.g. projector radii)."""
    radii = np.asarray(radii, dtype=np.float64)
    radii_j = radii if radii_j is None else np.asarray(radii_j, dtype=np.float64)
    shifts = lattice_shifts_within(cell, radii.max() + radii_j.max() + extra)
    translations = shifts @ cell
    pairs, cell_shifts, lengths = [], [], []
    for i in range(len(positions)):
        bonds = positions[None, :, :] + translations[:, None, :] - positions[i]  # (nR, N, 3)
        dist = np.linalg.norm(bonds, axis=-1)
        r_index, j_index = np.nonzero(dist < radii[i] + radii_j[None, :] + extra)
        for r, j in sorted(zip(r_index, j_index, strict=True), key=lambda t: (t[1], *shifts[t[0]])):
            pairs.append((i, j))
            cell_shifts.append(shifts[r])
            lengths.append(dist[r, j])
    return (
        np.array(pairs, dtype=np.int64).reshape(-1, 2),
        np.array(cell_shifts, dtype=np.int64).reshape(-1, 3),
        np.array(lengths),
    )


def _size(s: slice) -> int:
    return s.stop - s.start


class BlockAccumulator:
    """Accumulates (1/N) sum_k w_k Re[exp(sign i 2 pi k.R) X(k)_ij] for a fixed pair list."""

    def __init__(
        self, pairs: np.ndarray, shifts: np.ndarray, slices: list[slice], n_total: float, col_slices=None
    ) -> None:
        self.pairs = pairs
        self.shifts = shifts
        self.slices = slices
        self.col_slices = slices if col_slices is None else col_slices
        self.n_total = float(n_total)
        self.groups: dict[tuple[int, int], np.ndarray] = {}
        for p, (i, j) in enumerate(pairs):
            self.groups.setdefault((int(i), int(j)), []).append(p)
        self.groups = {key: np.array(v) for key, v in self.groups.items()}
        self.blocks: dict[tuple[int, int], np.ndarray] = {
            key: np.zeros((len(idx), _size(slices[key[0]]), _size(self.col_slices[key[1]])))
            for key, idx in self.groups.items()
        }

    def add(self, k_frac: np.ndarray, weight: float, matrix: np.ndarray, sign: int) -> None:
        self.add_many(np.asarray(k_frac)[None], np.array([weight]), np.asarray(matrix)[None], sign)

    def add_many(self, k_frac: np.ndarray, weights: np.ndarray, matrices: np.ndarray, sign: int) -> None:
        """``add`` for a stack of k-points (n_k, 3) with their matrices (n_k, n, n)."""
        for key, idx in self.groups.items():
            phase = np.exp(sign * 2j * np.pi * (self.shifts[idx] @ k_frac.T)) * (weights / self.n_total)
            sub = matrices[:, self.slices[key[0]], self.col_slices[key[1]]]
            self.blocks[key] += np.real(np.tensordot(phase, sub, axes=1))

    def packed(self, selection: np.ndarray | None = None) -> np.ndarray:
        """Row-major blocks concatenated in pair order (optionally only the selected pairs)."""
        ordered: list[np.ndarray] = [None] * len(self.pairs)
        for key, idx in self.groups.items():
            for n, p in enumerate(idx):
                ordered[p] = self.blocks[key][n]
        chosen = range(len(self.pairs)) if selection is None else np.nonzero(selection)[0]
        return np.concatenate([ordered[p].ravel() for p in chosen]) if len(chosen) else np.zeros(0)

    def block_dict(self) -> dict[tuple[int, int, int, int, int], np.ndarray]:
        out = {}
        for key, idx in self.groups.items():
            for n, p in enumerate(idx):
                out[(*key, *map(int, self.shifts[p]))] = self.blocks[key][n]
        return out

    def block_max(self) -> np.ndarray:
        """Largest |element| of each pair's block, in pair order."""
        out = np.zeros(len(self.pairs))
        for key, idx in self.groups.items():
            out[idx] = np.abs(self.blocks[key]).reshape(len(idx), -1).max(axis=1)
        return out


class BlockSet:
    """Blocks keyed (i, j, Rx, Ry, Rz) grouped by atom pair for fast Bloch sums X(k) = sum_R X(R) e^{ik.R}."""

    def __init__(self, blocks: dict[tuple[int, int, int, int, int], np.ndarray], slices: list[slice]) -> None:
        self.slices = slices
        self.n = slices[-1].stop if slices else 0
        grouped: dict[tuple[int, int], list] = {}
        for (i, j, *r), block in blocks.items():
            grouped.setdefault((i, j), []).append((r, block))
        self.groups = [
            (i, j, np.array([r for r, _ in v], dtype=np.float64), np.stack([b for _, b in v]))
            for (i, j), v in grouped.items()
        ]

    def at(self, k_frac: np.ndarray) -> np.ndarray:
        return self.at_many(np.asarray(k_frac)[None])[0]

    def at_many(self, k_frac: np.ndarray) -> np.ndarray:
        """X(k) (n_k, n, n) for a stack of k-points (n_k, 3)."""
        out = np.zeros((len(k_frac), self.n, self.n), dtype=np.complex128)
        for i, j, shifts, stack in self.groups:
            phase = np.exp(2j * np.pi * (k_frac @ shifts.T))
            out[:, self.slices[i], self.slices[j]] += np.tensordot(phase, stack, axes=1)
        return out
