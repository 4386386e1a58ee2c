"""Spin-orbit algebra in the project's real-harmonic basis, and the spinor matrices it defines.

A time-reversal-symmetric spinor operator O (the Kohn-Sham H of a non-magnetic spin-orbit SCF, its
density matrix) is stored as four real operators: O = O_0 (x) 1 + i sum_a O_a (x) sigma_a, with a = x, y, z
Cartesian and sigma the Pauli matrices on (up, down) along z. Time reversal (i sigma_y K) maps each term
to itself, so these real O_0, O_a are the whole of such an operator; hermiticity makes O_a antisymmetric
under (i, j, R) -> (j, i, -R). O_0 transforms like a spinless operator and (O_x, O_y, O_z) like it
times a pseudovector (l = 1, even under inversion). The spinor matrix is spin-major: all orbitals with
spin up, then all with spin down (docs/spin-orbit.md).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.linalg

# the sample directions that pin the real harmonics down (more than 2l + 1 for every l used here)
_SAMPLE = np.random.default_rng(20261206).normal(size=(64, 3))
_ROTATION_ANGLE = 0.3  # radians; any angle below pi gives the same generator


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    q = np.eye(3)
    q[i, i] = q[j, j] = c
    q[i, j], q[j, i] = -s, s
    return q


@lru_cache(maxsize=16)
def angular_momentum(l: int) -> np.ndarray:
    """(L_x, L_y, L_z) in units of hbar on the real harmonics Y_lm, m = -l..l: (3, 2l+1, 2l+1) complex,
    (L_a)_mm' = <Y_lm|L_a|Y_lm'>. Purely imaginary and hermitian.

    Built from the harmonics themselves, so it follows whatever sign and order convention they have:
    rotating a function by angle t about axis a is exp(-i t L_a), and (U f)(r) = f(Q^-1 r)."""
    from slem.projection.radial import real_ylm

    y = real_ylm(l, _SAMPLE)
    out = np.empty((3, 2 * l + 1, 2 * l + 1), dtype=np.complex128)
    for axis in range(3):
        rotated = real_ylm(l, _SAMPLE @ _rotation(axis, _ROTATION_ANGLE))  # Y(Q^T r) = Y(Q^-1 r)
        u = np.linalg.lstsq(y, rotated, rcond=None)[0]  # rotated[:, m] = sum_m' y[:, m'] u[m', m]
        generator = 1j * scipy.linalg.logm(u) / _ROTATION_ANGLE
        out[axis] = 0.5 * (generator + generator.conj().T)
    out.real = 0.0
    return out


def real_generators(l: int) -> np.ndarray:
    """A_a with L_a = i A_a: real antisymmetric (3, 2l+1, 2l+1)."""
    return angular_momentum(l).imag


PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


def spinor_blocks(scalar, vector) -> list[list]:
    """The 2 x 2 spin blocks [[uu, ud], [du, dd]] of O_0 (x) 1 + i sum_a O_a (x) sigma_a: the one place the
    Pauli algebra is written out, for dense arrays and scipy.sparse matrices alike."""
    x, y, z = vector
    return [[scalar + 1j * z, 1j * x + y], [1j * x - y, scalar - 1j * z]]


def spinor_matrix(scalar: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """O_0 (x) 1 + i sum_a O_a (x) sigma_a, spin-major, for matrices stacked over leading axes:
    ``scalar`` (..., n, m) and ``vector`` (3, ..., n, m) give (..., 2n, 2m)."""
    rows = spinor_blocks(np.asarray(scalar), [np.asarray(v) for v in vector])
    return np.concatenate([np.concatenate(row, axis=-1) for row in rows], axis=-2)


def spin_diagonal(matrix: np.ndarray) -> np.ndarray:
    """matrix (x) 1 (the spinor basis's S(k)), spin-major, stacked over leading axes like spinor_matrix."""
    return spinor_matrix(matrix, np.zeros((3, *np.shape(matrix))))


def spinor_parts(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``spinor_matrix`` for any spin-major (..., 2n, 2m) matrix: (O_0, (O_x, O_y, O_z)).

    Both are complex in general; for a time-reversal-symmetric matrix of real blocks (R-space) both
    are real, so their imaginary parts measure how far a matrix is from that form."""
    n, m = matrix.shape[-2] // 2, matrix.shape[-1] // 2
    uu, ud = matrix[..., :n, :m], matrix[..., :n, m:]
    du, dd = matrix[..., n:, :m], matrix[..., n:, m:]
    c_x, c_y, c_z = 0.5 * (ud + du), 0.5j * (ud - du), 0.5 * (uu - dd)
    return 0.5 * (uu + dd), -1j * np.stack([c_x, c_y, c_z])
