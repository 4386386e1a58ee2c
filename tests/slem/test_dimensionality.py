"""The vacuum rule that makes a cell two-dimensional, and the 2D band path that follows from it."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, graphene

from slem.bands import kpath
from slem.data.dimensionality import (
    in_plane_mesh,
    in_plane_repetitions,
    periodic_axes,
    vacuum_axes,
    vacuum_gaps,
)


def test_bulk_cells_have_no_vacuum_axis():
    cells = (bulk("Si", "diamond", a=5.43, cubic=True), bulk("Cu", "fcc", a=3.61), bulk("Al", "fcc", a=4.04))
    for atoms in cells:
        assert vacuum_axes(atoms.cell[:], atoms.positions) == (False, False, False)


def test_a_sheet_with_15_angstrom_of_vacuum_is_2d_along_its_normal():
    sheet = graphene(a=2.46, vacuum=7.5)
    assert vacuum_gaps(sheet.cell[:], sheet.positions)[2] == pytest.approx(15.0)
    assert vacuum_axes(sheet.cell[:], sheet.positions) == (False, False, True)
    assert periodic_axes(sheet.cell[:], sheet.positions) == (True, True, False)
    # the same sheet with its normal along the first cell vector
    cell, positions = sheet.cell[:][[2, 0, 1]], sheet.positions
    assert vacuum_axes(cell, positions) == (True, False, False)


def test_layered_bulk_with_a_van_der_waals_gap_stays_3d():
    graphite = graphene(a=2.46, vacuum=0.0)
    graphite.cell[2] = [0, 0, 3.35]  # one sheet per 3.35 Angstrom: the interlayer gap of graphite
    assert vacuum_axes(graphite.cell[:], graphite.positions) == (False, False, False)


def test_the_gap_is_measured_perpendicular_to_the_lattice_planes():
    cell = np.array([[2.5, 0, 0], [0, 2.5, 0], [8.0, 0, 6.0]])  # |c| = 10, plane spacing 6
    positions = np.zeros((1, 3))
    assert vacuum_gaps(cell, positions)[2] == pytest.approx(6.0)
    assert vacuum_axes(cell, positions)[2] is False
    cell[2] = [3.0, 0, 12.0]
    assert vacuum_axes(cell, positions) == (False, False, True)


def test_the_gap_wraps_around_the_cell():
    cell = np.diag([3.0, 3.0, 20.0])
    positions = np.array([[0, 0, 1.0], [0, 0, 19.0]])  # 2 Angstrom apart through the boundary
    assert vacuum_gaps(cell, positions)[2] == pytest.approx(18.0)


def test_pbc_false_is_a_vacuum_axis_whatever_the_gap():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    assert vacuum_axes(atoms.cell[:], atoms.positions, pbc=(True, False, True)) == (False, True, False)


def test_singular_cell_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="three independent lattice vectors"):
        vacuum_gaps(np.zeros((3, 3)), np.zeros((1, 3)))


def test_meshes_and_supercells_stay_in_plane():
    assert in_plane_mesh([2, 2, 2], [0.5, 0.5, 0.5], (False, False, True)) == ([2, 2, 1], [0.5, 0.5, 0.0])
    assert in_plane_repetitions([2, 2, 2], (False, False, True)) == [2, 2, 1]
    assert in_plane_repetitions([2, 2, 2], (False, False, False)) == [2, 2, 2]


def test_2d_band_path_of_a_hexagonal_sheet():
    sheet = graphene(a=2.46, vacuum=7.5)
    path = kpath(sheet.cell[:], None, 30, periodic_axes(sheet.cell[:], sheet.positions))
    assert path.labels == ["Γ", "M", "K", "Γ"]
    assert np.abs(path.kpts[:, 2]).max() == 0.0
    assert "A" in kpath(sheet.cell[:], None, 30).labels  # the 3D path wanders along k_z
    with pytest.raises(ValueError, match="Gamma only"):
        kpath(sheet.cell[:], None, 30, (False, False, False))
