"""Fast checks of the projection's building blocks (no pw.x needed)."""

from __future__ import annotations

import numpy as np
import pytest

from slem.bands import bloch_matrices
from slem.data.frame import Frame
from slem.projection.kmesh import auto_kmesh, check_kmesh, perpendicular_heights, reduced_mesh
from slem.projection.pairs import BlockAccumulator, pairs_within
from slem.projection.planewaves import apply_local_potential, g_sphere, local_potential_matrix
from slem.projection.radial import Q_STEP, orbital_transform, real_ylm


def test_real_harmonics_orthonormal_and_ordered():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(200000, 3))
    for l in range(4):
        y = real_ylm(l, v)
        gram = 4 * np.pi * (y.T @ y) / len(v)  # Monte Carlo over the sphere
        assert np.allclose(gram, np.eye(2 * l + 1), atol=0.02)
    x, y, z = np.eye(3)
    assert np.argmax(real_ylm(1, y[None])[0]) == 0  # p order (y, z, x)
    assert np.argmax(real_ylm(1, z[None])[0]) == 1
    assert np.argmax(real_ylm(1, x[None])[0]) == 2
    assert np.argmax(real_ylm(2, z[None])[0]) == 2  # d_z2 is m = 0


def test_radial_transform_preserves_norm():
    r = np.arange(0.0, 4.0, 0.01)
    values = np.where(r < 3.5, r * np.exp(-r) * (1 - (r / 3.5) ** 2) ** 2, 0.0)
    values /= np.sqrt(np.trapezoid(values**2 * r**2, r))
    spline = orbital_transform(1, r, values, qmax=40.0)
    q = np.arange(0.0, 40.0, Q_STEP)
    norm = 2 / np.pi * np.trapezoid(q**2 * spline(q) ** 2, q)  # Parseval for the Hankel transform
    assert norm == pytest.approx(1.0, abs=1e-4)


def test_g_sphere_is_a_sphere_around_k():
    cell = 10.26 / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0.0]])
    k = np.array([0.1, -0.05, 0.2])
    miller, kg = g_sphere(k, cell, 20.0)
    assert np.all(np.einsum("ij,ij->i", kg, kg) <= 20.0 + 1e-8)
    bigger, _ = g_sphere(k, cell, 20.5)
    assert len(bigger) > len(miller)
    assert len({tuple(m) for m in miller}) == len(miller)


def test_dense_and_fft_local_potential_agree():
    rng = np.random.default_rng(1)
    v_r = rng.normal(size=(12, 10, 14))
    cell = np.diag([6.0, 5.0, 7.0])
    miller, _ = g_sphere(np.zeros(3), cell, 6.0)
    coeffs = rng.normal(size=(len(miller), 3)) + 1j * rng.normal(size=(len(miller), 3))
    dense = local_potential_matrix(np.fft.fftn(v_r) / v_r.size, miller) @ coeffs
    assert np.allclose(dense, apply_local_potential(v_r, miller, coeffs, chunk=2), atol=1e-12)


def test_auto_kmesh_exceeds_twice_the_range():
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, 0.3, 9.0]])
    mesh = auto_kmesh(cell, 10.0)
    assert np.all(perpendicular_heights(cell) * mesh > 20.0)
    assert not check_kmesh(cell, mesh, 10.0)
    assert check_kmesh(cell, tuple(m - 1 for m in mesh), 10.0)


@pytest.mark.parametrize("mesh", [(1, 1, 1), (2, 3, 4), (5, 5, 5)])
def test_time_reversal_mesh_weights(mesh):
    frac, weights = reduced_mesh(mesh)
    assert weights.sum() == pytest.approx(np.prod(mesh))
    assert np.all(np.abs(frac) <= 0.5)


def test_block_accumulator_inverts_the_bloch_sum():
    """Random short-range blocks -> H(k) on an alias-free mesh -> blocks again, exactly."""
    rng = np.random.default_rng(2)
    cell = np.array([[3.0, 0.0, 0.0], [0.4, 3.2, 0.0], [0.0, 0.5, 3.5]])
    positions = np.array([[0.0, 0.0, 0.0], [1.2, 1.0, 1.4]])
    radii = np.array([2.0, 2.5])
    pairs, shifts, _ = pairs_within(positions, cell, radii)
    norb = np.array([1, 4])  # "1s" and "1s1p"
    lookup = {
        (int(i), int(j), *map(int, r)): p for p, ((i, j), r) in enumerate(zip(pairs, shifts, strict=True))
    }
    blocks = {}
    for key in lookup:
        if key in blocks:
            continue
        i, j, *r = key
        block = rng.normal(size=(norb[i], norb[j]))
        blocks[key] = block
        blocks[(j, i, *(-x for x in r))] = block.T if (i, j) != (j, i) or any(r) else 0.5 * (block + block.T)
    packed = np.concatenate([blocks[k].ravel() for k in lookup])
    frame = Frame([1, 6], positions, cell, [True] * 3, {"H": "1s", "C": "1s1p"}, pairs, shifts, {"H": packed})
    mesh = auto_kmesh(cell, radii.max() * 2)
    frac, weights = reduced_mesh(mesh)
    hk = bloch_matrices(frame, "H", frac)
    slices = [slice(0, 1), slice(1, 5)]
    acc = BlockAccumulator(pairs, shifts, slices, np.prod(mesh))
    for kf, w, h in zip(frac, weights, hk, strict=True):
        acc.add(kf, w, h, -1)
    assert np.allclose(acc.packed(), packed, atol=1e-12)
