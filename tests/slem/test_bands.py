"""Bloch sums and band energies from frame blocks."""

from __future__ import annotations

import numpy as np
import pytest

from slem.bands import band_energies, bloch_matrices, generalized_eigvalsh, kpath
from slem.bands.bloch import BandsError, bloch_matrix_sparse
from slem.data.frame import frame_from_blocks


def _chain(half: bool):
    """1-D s-orbital chain: onsite e0, hopping t, overlap s between neighbours."""
    e0, t, s = -1.0, -0.5, 0.1
    h = {(0, 0, 0, 0, 0): np.array([[e0]]), (0, 0, 1, 0, 0): np.array([[t]])}
    o = {(0, 0, 0, 0, 0): np.array([[1.0]]), (0, 0, 1, 0, 0): np.array([[s]])}
    if not half:
        h[(0, 0, -1, 0, 0)] = np.array([[t]])
        o[(0, 0, -1, 0, 0)] = np.array([[s]])
    cell = np.diag([2.0, 10.0, 10.0])
    return frame_from_blocks(["H"], np.zeros((1, 3)), cell, [True] * 3, {"H": "1s"}, {"H": h, "S": o}), (
        e0,
        t,
        s,
    )


def test_chain_analytic_bands_full_and_half_pair_lists():
    k = np.array([[x, 0.0, 0.0] for x in np.linspace(-0.5, 0.5, 11)])
    for half in (False, True):
        frame, (e0, t, s) = _chain(half)
        phase = 2 * np.cos(2 * np.pi * k[:, 0])
        expected = (e0 + t * phase) / (1 + s * phase)
        assert np.allclose(band_energies(frame, k)[:, 0], expected)


def test_cartesian_and_fractional_k_agree_and_sparse_matches_dense():
    frame, _ = _chain(False)
    frac = np.array([[0.2, 0.1, -0.3]])
    cart = frac @ (2 * np.pi * np.linalg.inv(frame.cell).T)
    assert np.allclose(bloch_matrices(frame, "H", frac), bloch_matrices(frame, "H", cart, cartesian=True))
    assert np.allclose(
        bloch_matrix_sparse(frame, "H", frac[0]).toarray(), bloch_matrices(frame, "H", frac)[0]
    )


def test_hermitian_bloch_matrices_from_a_two_atom_frame():
    rng = np.random.default_rng(0)
    blocks = {}
    for key in [(0, 1, 0, 0, 0), (0, 1, 1, 0, 0), (0, 0, 0, 1, 0)]:
        blocks[key] = rng.normal(size=(1, 4) if key[1] == 1 else (1, 1))
    blocks[(0, 0, 0, 0, 0)] = np.array([[1.0]])
    blocks[(1, 1, 0, 0, 0)] = np.eye(4)
    frame = frame_from_blocks(
        ["H", "C"], np.zeros((2, 3)), np.eye(3) * 3, [True] * 3, {"H": "1s", "C": "1s1p"}, {"H": blocks}
    )
    hk = bloch_matrices(frame, "H", rng.uniform(-0.5, 0.5, (4, 3)))
    assert np.allclose(hk, hk.conj().transpose(0, 2, 1))


def test_errors_and_kpath():
    frame, _ = _chain(False)
    with pytest.raises(BandsError, match="no operator 'D'"):
        bloch_matrices(frame, "D", np.zeros((1, 3)))
    with pytest.raises(BandsError, match="3 components"):
        bloch_matrices(frame, "H", np.zeros((1, 2)))
    path = kpath(5.43 / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0.0]]), "GXWLGK", npoints=50)
    assert path.kpts.shape == (50, 3) and path.labels[0] == "Γ" and len(path.labels) == 6


def _near_dependent_problem(eps: float):
    """(H, S) of 5 functions in a 6-dim orthonormal space; the fifth is a near copy of (b0 + b1)/sqrt 2.

    Returns H, S, the exact eigenvalues of the 5-function span and those of the span without the
    near-dependent direction (b0..b3), which canonical orthogonalisation should reproduce."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    a = a + a.T
    b = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    extra = (b[:, 0] + b[:, 1]) / np.sqrt(2) + eps * b[:, 4]
    basis = np.column_stack([b[:, :4], extra / np.linalg.norm(extra)])
    span5 = np.linalg.eigvalsh(b[:, :5].T @ a @ b[:, :5])
    span4 = np.linalg.eigvalsh(b[:, :4].T @ a @ b[:, :4])
    return basis.T @ a @ basis, basis.T @ basis, span5, span4


def test_canonical_orthogonalisation_bounds_error_amplification_of_a_near_singular_overlap():
    """Regression: Si8 DZP (S(k) eigenvalues down to 1.6e-4) turned 5 meV H noise into ~60 eV band errors."""
    h, s, span5, span4 = _near_dependent_problem(1e-2)
    assert np.linalg.eigvalsh(s)[0] < 1e-4
    np.testing.assert_allclose(generalized_eigvalsh(h, s), span5, atol=1e-6)
    noise = 1e-3 * np.random.default_rng(2).normal(size=h.shape)
    noisy = h + 0.5 * (noise + noise.T)
    assert np.abs(generalized_eigvalsh(noisy, s) - span5).max() > 1.0  # 1e-3 noise, a ghost band
    cut = generalized_eigvalsh(noisy, s, overlap_tolerance=1e-2)
    assert len(cut) == 4  # the one near-null direction of S is dropped
    np.testing.assert_allclose(cut, span4, atol=3e-2)  # the noise level, not the 18 of the ghost
    assert len(generalized_eigvalsh(noisy, s, overlap_tolerance=1e-2, n_bands=2)) == 2


def test_band_energies_overlap_tolerance_keeps_a_well_conditioned_problem_and_rejects_bad_input():
    frame, _ = _chain(half=False)
    k = np.array([[x, 0.0, 0.0] for x in np.linspace(-0.5, 0.5, 5)])
    np.testing.assert_allclose(
        band_energies(frame, k, overlap_tolerance=1e-3), band_energies(frame, k), atol=1e-12
    )
    with pytest.raises(BandsError, match="overlap_tolerance"):
        band_energies(frame, k, overlap_tolerance=-1.0)
