"""(d) Rotating cell and atoms together rotates every block by real-Y Wigner-D matrices.

The project's real harmonics Y (p = y, z, x) equal e3nn's spherical harmonics evaluated at
the permuted vector P v = (v_z, v_x, v_y): Y_e3nn(v) = Y(P v). Hence
D(Q) = e3nn D_from_matrix(P^T Q P) in the project's convention; both facts are checked
numerically here before they are used.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3

from slem.data.orbitals import parse_shells
from slem.projection.radial import real_ylm

P = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # P v = (v_z, v_x, v_y)


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def wigner_d(l: int, rotation: np.ndarray) -> np.ndarray:
    """D with Y(Q v) = D(Q) Y(v) for the project's real harmonics."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its angle tensors in the default dtype
    try:
        q = torch.tensor(P.T @ rotation @ P, dtype=torch.float64)
        return o3.Irrep(l, (-1) ** l).D_from_matrix(q).numpy()
    finally:
        torch.set_default_dtype(previous)


def test_e3nn_harmonics_are_permuted_project_harmonics():
    v = np.random.default_rng(3).normal(size=(20, 3))
    for l in range(4):
        e3nn_y = o3.spherical_harmonics(l, torch.tensor(v), normalize=True, normalization="integral").numpy()
        assert np.allclose(e3nn_y, real_ylm(l, v @ P.T), atol=1e-12)


def test_wigner_d_rotates_project_harmonics():
    v = np.random.default_rng(4).normal(size=(20, 3))
    q = random_rotation(5)
    for l in range(4):
        assert np.allclose(real_ylm(l, v @ q.T), real_ylm(l, v) @ wigner_d(l, q).T, atol=1e-12)


def _atom_rotation(shells: str, rotation: np.ndarray) -> np.ndarray:
    blocks = [wigner_d(l, rotation) for l in parse_shells(shells)]
    n = sum(len(b) for b in blocks)
    out = np.zeros((n, n))
    start = 0
    for b in blocks:
        out[start : start + len(b), start : start + len(b)] = b
        start += len(b)
    return out


@pytest.mark.slow
def test_blocks_rotate_with_wigner_d(qe_runs):
    rotation = random_rotation(11)
    original = qe_runs.project(qe_runs.scf("si2_distorted"), "DZP").frame
    rotated = qe_runs.project(qe_runs.scf("si2_distorted", rotation=rotation), "DZP").frame
    assert np.allclose(rotated.positions, original.positions @ rotation.T, atol=1e-6)
    d = _atom_rotation(original.basis["Si"], rotation)
    lookup = rotated.pair_lookup()
    worst = {"H": 0.0, "S": 0.0, "D": 0.0}
    for key, p in original.pair_lookup().items():
        q = lookup[key]
        for name in worst:
            expected = d @ original.block(name, p) @ d.T
            worst[name] = max(worst[name], np.abs(rotated.block(name, q) - expected).max())
    print(
        f"rotation covariance: max |H| diff {worst['H'] * 1000:.4f} meV, "
        f"S {worst['S']:.1e}, D {worst['D']:.1e}"
    )
    assert worst["H"] < 1e-3
    assert worst["S"] < 1e-6
    assert worst["D"] < 1e-4
