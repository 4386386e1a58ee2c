"""Sparse H(k), S(k) of a frame: scipy CSR built from the packed blocks, memory linear in the atom count.

The convention is ``slem.bands.bloch``'s: X(k) = sum_R X(R) exp(2 pi i k.R), k reduced (or Cartesian with
``cartesian=True``), and a pair (i, j, R) stored without its partner (j, i, -R) gets the transposed block
added, so half and full pair lists give the same matrix. ``BlochPattern`` computes the sparsity pattern
once (a sort of the matrix entries); every operator and k-point after that is a weighted bincount into it.

At k-points whose phases are all real (Gamma, and the zone-boundary points with 2k integer) the matrices
are real; elsewhere complex Hermitian. A spin-orbit part H_so_a is antisymmetric under (i, j, R) ->
(j, i, -R), so its missing partners enter with a minus sign and its H_so_a(k) is anti-Hermitian; ``pair``
assembles the spinor H(k) = H(k) (x) 1 + i sum_a H_so_a(k) (x) sigma_a (Hermitian, complex even at Gamma)
and S(k) (x) 1.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from slem.bands.bloch import BandsError, to_fractional
from slem.data.frame import Frame
from slem.data.operators import partner_sign


def _index_dtype(n: int):
    return np.int32 if n < 2**31 - 1 else np.int64


def missing_partners(frame: Frame) -> np.ndarray:
    """Boolean per pair: True when the frame lacks the pair's partner (j, i, -R)."""
    pairs, shifts = frame.pairs, frame.cell_shifts
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    bound = int(np.abs(shifts).max())
    base, n = 2 * bound + 1, frame.n_atoms
    if float(n) ** 2 * base**3 < 2**62:

        def code(i, j, r):
            r = r + bound
            return (((i * n + j) * base + r[:, 0]) * base + r[:, 1]) * base + r[:, 2]

        return ~np.isin(code(pairs[:, 1], pairs[:, 0], -shifts), code(pairs[:, 0], pairs[:, 1], shifts))
    keys = set(zip(*pairs.T.tolist(), *shifts.T.tolist(), strict=True))  # huge index range: plain set
    return np.array(
        [
            (j, i, -a, -b, -c) not in keys
            for (i, j), (a, b, c) in zip(pairs.tolist(), shifts.tolist(), strict=True)
        ]
    )


class BlochPattern:
    """The CSR pattern of X(k) for a frame's pair list, shared by H, S and D at every k.

    Entries are the packed block values in order, then the transposed copies of the blocks whose partner is
    missing; ``slot[e]`` is the CSR position entry e adds into. Memory: two int32 arrays per packed value
    during construction, one after (plus the pattern's ``indices``)."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        norb = frame.orbitals_per_atom
        self.n = int(norb.sum())
        itype = _index_dtype(self.n)
        first = np.concatenate([[0], np.cumsum(norb)[:-1]]).astype(np.int64)
        i, j = frame.pairs[:, 0], frame.pairs[:, 1]
        ni, nj = norb[i], norb[j]
        sizes = ni * nj
        self.n_values = int(sizes.sum())
        self.entry_pair = np.repeat(np.arange(len(sizes), dtype=itype), sizes)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        local = np.arange(self.n_values, dtype=np.int64) - offsets[self.entry_pair]
        width = nj[self.entry_pair]
        a = local // width
        rows = (first[i][self.entry_pair] + a).astype(itype)
        cols = (first[j][self.entry_pair] + local - a * width).astype(itype)
        del local, width, a
        missing = missing_partners(frame)
        # transposed copies: packed entries of pairs without a partner, row and column swapped
        self.extra = np.flatnonzero(missing[self.entry_pair]).astype(itype)
        rows, cols = np.concatenate([rows, cols[self.extra]]), np.concatenate([cols, rows[self.extra]])
        key = rows.astype(np.int64) * self.n + cols
        del rows, cols
        unique, slot = np.unique(key, return_inverse=True)
        del key
        self.slot = slot.astype(itype)
        del slot
        self.indices = (unique % self.n).astype(itype)
        counts = np.bincount(unique // self.n, minlength=self.n)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(itype)
        # the slot of entry (c, r) for each slot (r, c): the pattern is structurally symmetric because
        # every pair has its partner, stored or added
        row_of = np.repeat(np.arange(self.n, dtype=np.int64), counts)
        self.transpose = np.searchsorted(unique, self.indices.astype(np.int64) * self.n + row_of).astype(
            itype
        )
        del unique, row_of

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def phases(self, kpt, cartesian: bool = False) -> np.ndarray:
        """exp(2 pi i k.R) per pair: real (cos) when every phase is real, complex otherwise."""
        k = to_fractional(self.frame, kpt, cartesian)[0]
        if np.allclose(2 * k, np.round(2 * k), atol=1e-12, rtol=0):
            # Gamma and zone-boundary points: exp(i pi n) = (-1)^n exactly
            return 1.0 - 2.0 * (np.round(2 * k).astype(np.int64) @ self.frame.cell_shifts.T % 2)
        return np.exp(2j * np.pi * (self.frame.cell_shifts @ k))

    def matrix(
        self, operator: str, kpt=(0.0, 0.0, 0.0), cartesian: bool = False, hermitian: bool = True
    ) -> scipy.sparse.csr_matrix:
        """X(k) as CSR; ``hermitian`` averages X and X^H (a model's blocks are Hermitian only to its
        accuracy; eigensolvers need it exact), as ``slem.bands.bloch.generalized_eigvalsh`` does; for a
        spin-orbit part X and -X^H, since its X(k) is anti-Hermitian."""
        if operator not in self.frame.operators:
            raise BandsError(f"frame has no operator {operator!r}; it holds {sorted(self.frame.operators)}")
        sign = partner_sign(operator)
        values = np.asarray(self.frame.operators[operator], dtype=np.float64)
        phase = self.phases(kpt, cartesian)
        entry_phase = phase[self.entry_pair]
        weights = values * entry_phase
        if len(self.extra):
            extra = sign * values[self.extra] * np.conj(entry_phase[self.extra])
            weights = np.concatenate([weights, extra])
        del entry_phase
        if np.iscomplexobj(weights):
            data = np.bincount(self.slot, weights.real, minlength=self.nnz) + 1j * np.bincount(
                self.slot, weights.imag, minlength=self.nnz
            )
        else:
            data = np.bincount(self.slot, weights, minlength=self.nnz)
        del weights
        if hermitian:
            data = 0.5 * (data + sign * np.conj(data[self.transpose]))
        return scipy.sparse.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))

    def solved_matrix(
        self, operator: str, kpt=(0.0, 0.0, 0.0), cartesian: bool = False, hermitian: bool = True
    ) -> scipy.sparse.csr_matrix:
        """X(k) as it is solved: ``matrix``, but a spin-orbit frame's H and S as their spinor forms (2n x 2n,
        spin-major, as ``slem.bands.bloch.operator_pair``): H (x) 1 + i sum_a H_so_a (x) sigma_a, S (x) 1."""
        from slem.bands.bloch import is_spinor
        from slem.data.operators import spin_orbit_names
        from slem.spinor import spinor_blocks

        matrix = self.matrix(operator, kpt, cartesian, hermitian)
        if operator not in ("H", "S") or not is_spinor(self.frame):
            return matrix
        if operator == "S":
            return scipy.sparse.block_diag([matrix, matrix], format="csr")
        parts = [self.matrix(name, kpt, cartesian, hermitian) for name in spin_orbit_names("H")]
        return scipy.sparse.bmat(spinor_blocks(matrix, parts), format="csr")

    def channels(
        self, kpt=(0.0, 0.0, 0.0), cartesian: bool = False, hermitian: bool = True
    ) -> tuple[list[scipy.sparse.csr_matrix], scipy.sparse.csr_matrix]:
        """([H(k) of each spin channel], the S(k) they share): H_up and H_down of a spin-polarised frame,
        else the one H as solved (``pair``)."""
        from slem.data.operators import channel_names

        names = channel_names(self.frame.operators, "H")
        if len(names) == 1:
            h, s = self.pair(kpt, cartesian, hermitian)
            return [h], s
        return [self.matrix(name, kpt, cartesian, hermitian) for name in names], self.matrix(
            "S", kpt, cartesian, hermitian
        )

    def pair(
        self, kpt=(0.0, 0.0, 0.0), cartesian: bool = False, hermitian: bool = True
    ) -> tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix | None]:
        """(H(k), S(k)) to solve (``solved_matrix``); S is None for a frame without one."""
        s = self.solved_matrix("S", kpt, cartesian, hermitian) if "S" in self.frame.operators else None
        return self.solved_matrix("H", kpt, cartesian, hermitian), s


def sparse_bloch(
    frame: Frame, operator: str, kpt=(0.0, 0.0, 0.0), cartesian: bool = False, hermitian: bool = True
) -> scipy.sparse.csr_matrix:
    """One X(k) as CSR (builds a ``BlochPattern``; keep one yourself for several operators or k-points)."""
    return BlochPattern(frame).matrix(operator, kpt, cartesian, hermitian)
