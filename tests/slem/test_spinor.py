"""The spin-orbit algebra: L on the project's real harmonics, the spinor form, the j split of a FR UPF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_projection_rotation import random_rotation, wigner_d

from slem.data.operators import check_operator_set
from slem.qe.relativistic import j_average, scalar_weights, spin_orbit_weights
from slem.qe.upf import read_upf
from slem.spinor import PAULI, angular_momentum, real_generators, spinor_matrix, spinor_parts

FR_SI = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-fr" / "Si.upf"


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_angular_momentum_algebra(l):
    lx, ly, lz = angular_momentum(l)
    assert np.allclose(lx @ ly - ly @ lx, 1j * lz, atol=1e-12)  # the sign fixes the sense of rotation
    assert np.allclose(lx @ lx + ly @ ly + lz @ lz, l * (l + 1) * np.eye(2 * l + 1), atol=1e-12)
    assert np.allclose(np.linalg.eigvalsh(lz), np.arange(-l, l + 1), atol=1e-12)
    assert np.abs(angular_momentum(l).real).max() == 0.0


def test_p_orbitals_carry_the_cartesian_generators():
    """On p = (y, z, x), L_a is -i epsilon_abc in Cartesian terms: <y|L_x|z> = -i."""
    a = real_generators(1)
    assert np.allclose(a[0], [[0, -1, 0], [1, 0, 0], [0, 0, 0]], atol=1e-12)
    assert np.allclose(a[2], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]], atol=1e-12)


@pytest.mark.parametrize("l", [1, 2, 3])
def test_angular_momentum_is_a_vector_operator(l):
    """D(Q) L_a D(Q)^T = sum_b Q_ba L_b: the spin-orbit parts K_a rotate as a (pseudo)vector."""
    q = random_rotation(l)
    d = wigner_d(l, q)
    lhs = np.einsum("ij,ajk,lk->ail", d, angular_momentum(l), d)
    rhs = np.einsum("ba,bij->aij", q, angular_momentum(l))
    assert np.allclose(lhs, rhs, atol=1e-12)


def test_real_parts_make_a_hermitian_time_reversal_symmetric_spinor():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    scalar = a + a.T
    b = rng.normal(size=(3, 5, 5))
    vector = b - b.transpose(0, 2, 1)
    m = spinor_matrix(scalar, vector)
    assert np.allclose(m, m.conj().T)
    theta = np.kron(1j * PAULI[1], np.eye(5))  # time reversal i sigma_y K
    assert np.allclose(theta @ m.conj() @ np.linalg.inv(theta), m)
    assert not np.allclose(theta @ spinor_matrix(scalar, 1j * vector).conj() @ np.linalg.inv(theta), m)
    back_scalar, back_vector = spinor_parts(m)
    assert np.allclose(back_scalar, scalar) and np.allclose(back_vector, vector)


def test_fully_relativistic_upf_splits_into_j_average_and_spin_orbit():
    upf = read_upf(FR_SI, spin_orbit=True)
    assert upf.spin_orbit and [b.j for b in upf.betas][:4] == [0.5, 0.5, 0.5, 1.5]
    # P_{l,j} = (l + 1/2 +- (L.sigma + 1/2)) / (2l + 1): the two weights of each l rebuild both projectors
    for beta, w, u in zip(upf.betas, scalar_weights(upf), spin_orbit_weights(upf), strict=True):
        l = beta.l
        ls = sum(np.kron(angular_momentum(l)[a], PAULI[a]) for a in range(3)) if l else np.zeros((2, 2))
        projector = w * np.eye(2 * (2 * l + 1)) + u * ls
        assert np.allclose(projector @ projector, projector, atol=1e-12)
        assert np.isclose(np.trace(projector).real, 2 * beta.j + 1)
    scalar = j_average(upf)
    assert not scalar.spin_orbit and scalar.md5 == upf.md5 and len(scalar.betas) == len(upf.betas)
    assert [(c.label, c.l, round(c.occupation, 3)) for c in scalar.chi] == [("3S", 0, 2.0), ("3P", 1, 2.0)]
    # the merged 3P keeps its level (the (2j+1)-weighted mean) and the spread of its j partners, which the
    # ghost-state check allows for (slem.basis.ghosts.SPIN_ORBIT_SPREAD_FRACTION)
    p32, p12 = (c.pseudo_energy for c in upf.chi if c.l == 1)
    merged = scalar.chi[1]
    assert np.isclose(merged.pseudo_energy, (4 * p32 + 2 * p12) / 6) and np.isclose(
        merged.spin_orbit_spread, abs(p32 - p12)
    )


def test_spin_orbit_operator_sets_are_complete():
    check_operator_set(["H", "S", "D", "H_so_x", "H_so_y", "H_so_z"])
    with pytest.raises(ValueError, match="H_so_z"):
        check_operator_set(["H", "S", "H_so_x", "H_so_y"])
    with pytest.raises(ValueError, match="spin-orbit frame"):
        check_operator_set(["S", "H_so_x", "H_so_y", "H_so_z"])
