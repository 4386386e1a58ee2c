"""(f) Bad input to the projection fails with a message that names the problem and the fix."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from slem.basis.orbital import write_basis
from slem.cli.project import project
from slem.data.frame import FrameFormatError, read_frames
from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pw_input, run_qe
from slem.qe.upf import UpfError, read_upf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(qe_runs, tmp_path_factory):
    case = qe_runs.scf("si2_distorted")
    folder = tmp_path_factory.mktemp("project_cli")
    write_basis(folder / "basis.h5", {"Si": qe_runs.basis("Si", "DZP")})
    return case, folder


def _run(*args: str):
    return CliRunner().invoke(project, list(map(str, args)))


def test_cli_writes_frame_and_summary(inputs):
    case, folder = inputs
    result = _run(
        "--scf-dir",
        case.save,
        "--potential",
        case.potential,
        "--basis",
        folder / "basis.h5",
        "--pseudo-dir",
        DEFAULT_PSEUDO_DIR,
        "-o",
        folder / "frame.h5",
        "--summary",
        folder / "summary.json",
    )
    assert result.exit_code == 0, result.output
    assert "sum Tr(DS)" in result.output
    summary = json.loads((folder / "summary.json").read_text())
    assert abs(summary["sum_tr_ds"] - 8.0) < 1e-6 and summary["scf_converged"]
    frame = read_frames(folder / "frame.h5")[0]
    assert set(frame.operators) == {"H", "S", "D"} and frame.basis == {"Si": "2s2p1d"}


def test_ultrasoft_pseudopotential_is_rejected(tmp_path):
    with pytest.raises(UpfError, match="ultrasoft.*norm-conserving"):
        read_upf(DEFAULT_PSEUDO_DIR / "C.pbe-rrkjus.UPF")


def test_missing_potential(inputs):
    case, folder = inputs
    result = _run(
        "--xml",
        case.save / "data-file-schema.xml",
        "--potential",
        folder / "nope.dat",
        "--basis",
        folder / "basis.h5",
        "-o",
        folder / "x.h5",
    )
    assert result.exit_code != 0
    assert "does not exist" in result.output and "plot_num=1" in result.output


def test_corrupt_basis_file(inputs, tmp_path):
    case, folder = inputs
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    result = _run(
        "--scf-dir",
        case.save,
        "--potential",
        case.potential,
        "--basis",
        tmp_path / "bad.h5",
        "-o",
        tmp_path / "x.h5",
    )
    assert (
        result.exit_code != 0
        and "not a readable HDF5 file" in result.output
        and "slem basis" in result.output
    )


def test_corrupt_frame_file(inputs, tmp_path):
    _, folder = inputs
    data = (folder / "frame.h5").read_bytes() if (folder / "frame.h5").exists() else b"\x89HDF"
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(FrameFormatError, match="corrupt|damaged"):
        read_frames(tmp_path / "cut.h5")


def test_basis_from_another_pseudopotential(inputs, tmp_path):
    case, folder = inputs
    other = tmp_path / "pseudo"
    other.mkdir()
    # Same physics, different file: the md5 differs, so the basis no longer matches.
    shutil.copy(DEFAULT_PSEUDO_DIR / "Si.pbe-rrkj.UPF", other / "Si.pbe-rrkj.UPF")
    with open(other / "Si.pbe-rrkj.UPF", "a") as handle:
        handle.write("\n")
    result = _run(
        "--scf-dir",
        case.save,
        "--potential",
        case.potential,
        "--basis",
        folder / "basis.h5",
        "--pseudo-dir",
        other,
        "-o",
        tmp_path / "x.h5",
    )
    assert result.exit_code != 0 and "rebuild the basis" in result.output


def test_potential_of_another_run(inputs, qe_runs, tmp_path):
    case, folder = inputs
    other = qe_runs.scf("si2", kmesh=(6, 6, 6))
    result = _run(
        "--scf-dir",
        case.save,
        "--potential",
        other.potential,
        "--basis",
        folder / "basis.h5",
        "-o",
        tmp_path / "x.h5",
    )
    assert result.exit_code != 0
    assert "does not belong to this SCF" in result.output or "not one run" in result.output


def test_bad_kmesh_option(inputs, tmp_path):
    case, folder = inputs
    result = _run(
        "--scf-dir",
        case.save,
        "--potential",
        case.potential,
        "--basis",
        folder / "basis.h5",
        "-o",
        tmp_path / "x.h5",
        "--kmesh",
        "4,4",
    )
    assert result.exit_code != 0 and "three positive integers" in result.output


def test_spin_polarised_scf_with_one_potential_is_refused_naming_both_channels(inputs, tmp_path):
    """A real nspin=2 pw.x run (its XML has nbnd_up/nbnd_dw, no nbnd) given one potential: one line naming
    nspin and the two files it needs."""
    case, folder = inputs
    text = pw_input(
        case.symbols,
        case.positions,
        case.cell,
        case.pseudos,
        15.0,
        (2, 2, 2),
        system={"nspin": 2, "starting_magnetization(1)": 0.5, "occupations": "smearing", "degauss": 0.02},
    )
    run_qe("pw.x", text, tmp_path, "scf")
    result = _run(
        "--scf-dir", tmp_path / "out" / "pwscf.save", "--potential", case.potential,
        "--basis", folder / "basis.h5", "-o", tmp_path / "frame.h5",
    )  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    assert "nspin=2" in errors[0] and "--potential-up and --potential-down" in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "frame.h5").exists()
