"""A supercell samples its cell's Brillouin-zone points only at the folded k-points (slem/qe/kpoints.py).

The real run: perfect diamond Si2 (Debian PBE Si, 20 Ry) with a 2x2x2 shifted mesh against its 2x2x2
supercell Si16 at the folded mesh (1x1x1 shifted) and at Gamma; the projected onsite H must agree with the
fold to numerical precision and visibly differ without it.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import fcc_cell

from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pp_input, pw_input, run_qe
from slem.qe.kpoints import folded_points, mesh_points, supercell_mesh

SI = "Si.pbe-rrkj.UPF"


def test_a_divisible_mesh_folds_into_a_mesh_with_the_same_offset():
    assert supercell_mesh([4, 4, 2], [0.5, 0.5, 0.0], [2, 2, 1]) == ([2, 2, 2], [0.5, 0.5, 0.0])
    assert supercell_mesh([1, 1, 1], [0.5, 0.5, 0.5], [2, 2, 2]) is None
    # the supercell's mesh, unfolded by m / r, is the cell's mesh again
    small = mesh_points([4, 2, 3], [0.5, 0.0, 0.5])
    big_mesh, offset = supercell_mesh([4, 2, 3], [0.5, 0.0, 0.5], [2, 2, 3])
    big = mesh_points(big_mesh, offset)
    shifts = mesh_points([2, 2, 3], [0, 0, 0]) * np.array([2, 2, 3])
    unfolded = np.round(((big[:, None, :] + shifts[None]) / np.array([2, 2, 3])).reshape(-1, 3), 12) % 1
    assert sorted(map(tuple, unfolded)) == sorted(map(tuple, np.round(small, 12) % 1))


def test_one_shifted_point_folds_to_gamma_of_the_doubled_cell():
    points, weights = folded_points(mesh_points([1, 1, 1], [0.5] * 3), np.ones(1), [2, 2, 2])
    assert np.allclose(points, 0.0) and np.allclose(weights, 1.0)
    points, weights = folded_points(mesh_points([3, 1, 1], [0.0] * 3), np.ones(3) / 3, [2, 1, 1])
    assert np.allclose(sorted(points[:, 0]), [0.0, 1 / 3, 2 / 3]) and np.allclose(weights, 1 / 3)


def _onsite(tmp_path, name, repeat, kpoints):
    from slem.basis.generate import generate_basis
    from slem.projection.project import project
    from slem.qe.potential import read_filplot
    from slem.qe.upf import read_upf
    from slem.qe.xml import read_qe_xml

    cell = fcc_cell(5.43)
    base = np.array([[0.0, 0.0, 0.0], [1.3575] * 3])
    shifts = np.array([[i, j, k] for i in range(repeat) for j in range(repeat) for k in range(repeat)]) @ cell
    positions = (shifts[:, None, :] + base[None]).reshape(-1, 3)
    symbols = ["Si"] * len(positions)
    folder = tmp_path / name
    run_qe("pw.x", pw_input(symbols, positions, repeat * cell, {"Si": SI}, 20.0, kpoints), folder, "scf")
    run_qe("pp.x", pp_input(), folder, "pp")
    basis = {"Si": generate_basis(DEFAULT_PSEUDO_DIR / SI, "SZP")}
    result = project(
        read_qe_xml(folder / "out" / "pwscf.save"),
        read_filplot(folder / "vtot.dat"),
        basis,
        {"Si": read_upf(DEFAULT_PSEUDO_DIR / SI)},
    )
    return np.diag(result.frame.blocks("H")[(0, 0, 0, 0, 0)])


@pytest.mark.slow
def test_the_folded_supercell_reproduces_the_cells_onsite_h(tmp_path):
    if shutil.which("pw.x") is None or not (DEFAULT_PSEUDO_DIR / SI).is_file():
        pytest.skip("pw.x or the Debian Si pseudopotential is missing")
    cell = _onsite(tmp_path, "si2", 1, mesh_points([2, 2, 2], [0.5] * 3))
    big_mesh, offset = supercell_mesh([2, 2, 2], [0.5] * 3, [2, 2, 2])
    folded = _onsite(tmp_path, "si16_folded", 2, mesh_points(big_mesh, offset))
    gamma = _onsite(tmp_path, "si16_gamma", 2, np.zeros((1, 3)))
    assert np.abs(folded - cell).max() < 5e-4  # eV (0.1 meV measured: FFT grids differ, not the density)
    assert np.abs(gamma - cell).max() > 0.01  # another sampling is another density
