"""Fast checks of the projection's building blocks (no pw.x needed)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import CubicSpline
from scipy.special import spherical_jn

from slem.bands import bloch_matrices
from slem.basis.orbital import ElementBasis, RadialOrbital
from slem.data.frame import Frame
from slem.projection.grid_orbitals import GridOrbitals
from slem.projection.kmesh import auto_kmesh, check_kmesh, normal_reach, perpendicular_heights, reduced_mesh
from slem.projection.local_potential import local_potential_blocks
from slem.projection.pairs import BlockAccumulator, pairs_within
from slem.projection.planewaves import apply_local_potential, g_sphere, local_potential_matrix
from slem.projection.radial import (
    BOHR,
    Q_STEP,
    orbital_transform,
    orbital_transforms,
    outer_bessels,
    real_ylm,
    spherical_bessels,
)
from slem.projection.twocentre import TwoCentreTable, real_gaunt


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


def test_fast_spherical_bessels_match_scipy():
    x = np.concatenate([np.linspace(0.0, 12.0, 5001), np.linspace(12.0, 600.0, 5001)])
    for l, values in enumerate(spherical_bessels(7, x)):
        assert np.abs(values - spherical_jn(l, x)).max() < 1e-13


def test_bessel_tables_of_outer_products_match_scipy():
    """The angle-addition sines of outer_bessels (uniform first factor) against scipy."""
    q = np.linspace(0.0, 25.0, 1251)
    r = np.geomspace(1e-4, 3.0, 300)  # a logarithmic mesh, as in a UPF
    for l, values in enumerate(outer_bessels(4, q, r)):
        assert np.abs(values - spherical_jn(l, np.outer(q, r))).max() < 1e-13


def test_real_gaunt_expands_products_of_harmonics():
    """Y_a(v) Y_b(v) = sum_LM G(a, b, LM) Y_LM(v) exactly, L = |l_a - l_b| .. l_a + l_b."""
    v = np.random.default_rng(5).normal(size=(50, 3))
    for l1, l2 in [(1, 1), (2, 1), (2, 2), (3, 2), (3, 3)]:
        product = np.einsum("pa,pb->pab", real_ylm(l1, v), real_ylm(l2, v))
        expansion = sum(
            np.einsum("abm,pm->pab", real_gaunt(l1, l2, big_l), real_ylm(big_l, v))
            for big_l in range(abs(l1 - l2), l1 + l2 + 1)
        )
        assert np.abs(product - expansion).max() < 1e-12
    assert np.allclose(real_gaunt(1, 1, 0)[:, :, 0], np.eye(3) / np.sqrt(4 * np.pi))


def _gaussian_basis(
    exponent: float = 0.8, cutoff: float = 3.5, p_cutoff: float | None = None
) -> ElementBasis:
    """s, p, d Gaussians smoothly cut at ``cutoff`` (Angstrom; the p at ``p_cutoff`` if given), as a
    basis file would hold them."""
    r = np.arange(0.0, cutoff + 0.005, 0.005)
    orbitals = []
    for l in range(3):
        rc = p_cutoff if l == 1 and p_cutoff else cutoff
        values = np.where(r < rc, r**l * np.exp(-exponent * r**2) * (1 - (r / rc) ** 2) ** 3, 0.0)
        values /= np.sqrt(np.trapezoid(values**2 * r**2, r))
        orbitals.append(RadialOrbital(l=l, zeta=0, r=r, values=values, cutoff=rc))
    return ElementBasis("X", "test", orbitals)


def _orbital_values(basis: ElementBasis, vectors_bohr: np.ndarray) -> np.ndarray:
    """Orbitals at points by a per-orbital cubic spline (the same interpolation GridOrbitals uses)."""
    r = np.linalg.norm(vectors_bohr, axis=1)
    cols = []
    for o in basis.orbitals:
        radial = CubicSpline(o.r / BOHR, o.values * BOHR**1.5)(np.minimum(r, o.r[-1] / BOHR))
        cols.append((np.where(r < o.cutoff / BOHR, radial, 0.0))[:, None] * real_ylm(o.l, vectors_bohr))
    return np.concatenate(cols, axis=1)


def test_two_centre_overlap_and_kinetic_against_direct_quadrature():
    basis = _gaussian_basis(exponent=1.2, cutoff=2.4)
    q = np.linspace(0.0, 30.0, 1501)
    radial = list(zip([o.l for o in basis.orbitals], orbital_transforms(basis.orbitals, q), strict=True))
    radius = basis.cutoff / BOHR
    s_table = TwoCentreTable(radial, radial, q, 0, 2 * radius)
    bond = np.array([1.1, -2.3, 1.7])
    h = 0.1
    axis = np.arange(-radius - h, radius + h, h)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    direct = _orbital_values(basis, grid).T @ _orbital_values(basis, grid - bond) * h**3
    assert np.abs(s_table.blocks(bond[None])[0] - direct).max() < 2e-4
    onsite = s_table.blocks(np.zeros((1, 3)))[0]
    assert np.allclose(np.diag(onsite), 1.0, atol=1e-6)
    # Kinetic energy of a Gaussian-like s orbital is positive and symmetric in the pair.
    t_table = TwoCentreTable(radial, radial, q, 2, 2 * radius)
    t_ab, t_ba = t_table.blocks(bond[None])[0], t_table.blocks(-bond[None])[0]
    assert np.allclose(t_ab, t_ba.T, atol=1e-10)
    assert np.all(np.diag(t_table.blocks(np.zeros((1, 3)))[0]) > 0)


@pytest.mark.parametrize("p_cutoff", [None, 1.2])
def test_local_potential_tiles_match_brute_force_quadrature(p_cutoff):
    """The tile-and-image bookkeeping equals a plain sum over every grid point of the spheres, for
    any tile size (ragged tiles at the cell's edge included), with an atom given outside the home
    cell, and when a short orbital forms a radius group of its own (``p_cutoff``)."""
    basis = _gaussian_basis(cutoff=2.2, p_cutoff=p_cutoff)
    cell = np.array([[6.5, 0.0, 0.0], [1.2, 6.0, 0.0], [0.3, -0.8, 7.1]])
    positions = np.array([[0.2, 0.1, 0.3], [3.1, 2.9, 3.6]]) - np.array([[0.0, 0.0, 0.0], cell[1]])
    shape = (18, 20, 22)
    frac = np.stack(np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij"), -1)
    potential = np.cos(2 * np.pi * frac[..., 0]) + 0.5 * np.sin(2 * np.pi * (frac[..., 1] - 2 * frac[..., 2]))
    orbitals = {"X": GridOrbitals(basis)}
    assert len(orbitals["X"].groups) == (2 if p_cutoff else 1)
    radii = np.full(2, orbitals["X"].cutoff)
    pairs, shifts, _ = pairs_within(positions, cell, radii)
    keys = [(int(i), int(j), *map(int, r)) for (i, j), r in zip(pairs, shifts, strict=True)]
    blocks = local_potential_blocks(cell, positions, ["X", "X"], potential, orbitals, keys)
    small_tiles = local_potential_blocks(cell, positions, ["X", "X"], potential, orbitals, keys, tile=3)
    dv = abs(np.linalg.det(cell)) / potential.size
    lattice = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    points = (frac.reshape(-1, 3)[None, :, :] + lattice[:, None, :]).reshape(-1, 3) @ cell
    v_points = np.tile(potential.ravel(), len(lattice))
    for key in keys[:: max(1, len(keys) // 6)]:
        i, j, *r = key
        left = _orbital_values(basis, points - positions[i])
        right = _orbital_values(basis, points - positions[j] - np.array(r) @ cell)
        expected = (left * v_points[:, None]).T @ right * dv
        assert np.abs(blocks[key] - expected).max() < 1e-9
        assert np.abs(small_tiles[key] - expected).max() < 1e-9


def test_a_sheet_needs_one_k_point_across_its_vacuum():
    # hBN-like sheet: in-plane bonds up to 9.5 A, 15 A of cell along z, atoms in one plane
    cell = np.array([[2.5, 0.0, 0.0], [-1.25, 2.165, 0.0], [0.0, 0.0, 15.0]])
    bonds = np.array([[9.5, 0.0, 0.0], [0.0, 9.4, 0.0], [3.0, 2.0, 0.0]])
    reach = normal_reach(cell, bonds)
    assert reach[2] == pytest.approx(0.0)
    assert auto_kmesh(cell, 9.5, reach)[2] == 1
    assert auto_kmesh(cell, 9.5)[2] == 2  # the conservative bound ignores that no bond crosses the gap
    assert not check_kmesh(cell, auto_kmesh(cell, 9.5, reach), 9.5, reach)
    # in bulk the reach along a normal can equal the range: then the old rule n h > 2 range is recovered
    cubic = np.eye(3) * 5.43
    assert auto_kmesh(cubic, 9.0, np.full(3, 9.0)) == auto_kmesh(cubic, 9.0)
