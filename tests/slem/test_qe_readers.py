"""QE file readers: grid order of the pp.x file, and clear errors on damaged input."""

from __future__ import annotations

import numpy as np
import pytest

from slem.qe.inputs import pp_input, pw_input
from slem.qe.potential import PotentialFileError, read_filplot
from slem.qe.xml import QeXmlError, read_qe_xml


def _write_filplot(path, values: np.ndarray, plot_num: int = 1, alat: float = 10.0) -> None:
    """A file in pp.x's layout: Fortran order, first index fastest, five values per line."""
    n1, n2, n3 = values.shape
    flat = values.transpose(2, 1, 0).ravel()
    lines = ["", f"{n1} {n2} {n3} {n1} {n2} {n3} 1 1", f"0 {alat} 0 0 0 0 0"]
    lines += [
        "1.0 0.0 0.0",
        "0.0 1.0 0.0",
        "0.0 0.0 1.0",
        f"40.0 4.0 10.0 {plot_num}",
        "1 Si 4.0",
        "1 0.0 0.0 0.0 1",
    ]
    lines += [" ".join(f"{x:.9e}" for x in flat[i : i + 5]) for i in range(0, len(flat), 5)]
    path.write_text("\n".join(lines) + "\n")


def test_filplot_grid_order(tmp_path):
    i, j, k = np.meshgrid(np.arange(4), np.arange(3), np.arange(5), indexing="ij")
    values = i + 10.0 * j + 100.0 * k
    _write_filplot(tmp_path / "v.dat", values)
    pot = read_filplot(tmp_path / "v.dat")
    assert np.array_equal(pot.values_ry, values)
    assert np.allclose(pot.cell_bohr, 10.0 * np.eye(3))


def test_filplot_errors(tmp_path):
    with pytest.raises(PotentialFileError, match="does not exist.*plot_num=1"):
        read_filplot(tmp_path / "missing.dat")
    _write_filplot(tmp_path / "rho.dat", np.ones((2, 2, 2)), plot_num=0)
    with pytest.raises(PotentialFileError, match="plot_num=0"):
        read_filplot(tmp_path / "rho.dat")
    _write_filplot(tmp_path / "cut.dat", np.ones((4, 4, 4)))
    text = (tmp_path / "cut.dat").read_text().splitlines()
    (tmp_path / "cut.dat").write_text("\n".join(text[:-3]))
    with pytest.raises(PotentialFileError, match="truncated"):
        read_filplot(tmp_path / "cut.dat")
    (tmp_path / "junk.dat").write_text("not a potential\n")
    with pytest.raises(PotentialFileError, match="not a readable"):
        read_filplot(tmp_path / "junk.dat")


def test_xml_errors(tmp_path):
    with pytest.raises(QeXmlError, match="does not exist"):
        read_qe_xml(tmp_path)
    (tmp_path / "data-file-schema.xml").write_text("<qes:espresso><output><atomic_str")
    with pytest.raises(QeXmlError, match="not valid XML"):
        read_qe_xml(tmp_path)
    (tmp_path / "data-file-schema.xml").write_text("<espresso><input/></espresso>")
    with pytest.raises(QeXmlError, match="output"):
        read_qe_xml(tmp_path)


def test_input_writers():
    text = pw_input(["Si", "Si"], np.zeros((2, 3)), np.eye(3) * 5, {"Si": "Si.pbe-rrkj.UPF"}, 20.0, (2, 2, 2))
    assert "ibrav = 0" in text and "K_POINTS automatic\n2 2 2 0 0 0" in text
    bands = pw_input(
        ["Si"], np.zeros((1, 3)), np.eye(3), {"Si": "x"}, 20.0, np.zeros((2, 3)), calculation="bands"
    )
    assert "K_POINTS crystal\n2\n" in bands and "diago_full_acc = .true." in bands
    assert "plot_num = 1" in pp_input()


@pytest.mark.slow
def test_xml_reader_on_real_scf(qe_runs):
    case = qe_runs.scf("si2_distorted")
    scf = read_qe_xml(case.save)
    assert scf.converged and scf.occupations == "fixed"
    assert scf.n_electrons == 8.0
    assert np.allclose(scf.cell_bohr * 0.529177210903, case.cell, atol=1e-6)
    assert np.allclose(scf.positions_bohr * 0.529177210903, case.positions, atol=1e-6)
    assert scf.ecutwfc_ha == pytest.approx(case.ecutwfc / 2)
    assert scf.eigenvalues_ha.shape == (len(scf.kweights), scf.n_bands)
    assert scf.kweights.sum() == pytest.approx(2.0)
    pot = read_filplot(case.potential)
    assert pot.values_ry.shape == scf.fft_grid
    assert np.allclose(pot.positions_bohr, scf.positions_bohr, atol=1e-5)
