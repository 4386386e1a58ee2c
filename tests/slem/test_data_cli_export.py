"""``slem export`` through the real command group."""

from __future__ import annotations

from click.testing import CliRunner
from test_data_synthetic import assert_frames_equal, random_frame

from slem.cli.main import cli
from slem.data.frame import read_file_info, read_frames, write_frames


def test_export_and_import_both_formats(tmp_path):
    frames = [random_frame(s, n_atoms=2) for s in range(2)]
    source = write_frames(tmp_path / "frames.h5", frames)
    runner = CliRunner()
    for fmt in ("deeptb", "deeph"):
        result = runner.invoke(cli, ["export", str(source), "--format", fmt, "-o", str(tmp_path / fmt)])
        assert result.exit_code == 0, result.output
        assert "wrote 2 frame(s)" in result.output
        back = tmp_path / f"back_{fmt}.h5"
        args = [
            "export",
            "--import-from",
            fmt,
            str(tmp_path / fmt),
            "-o",
            str(back),
            "--basis",
            "Si=2s2p1d,C=1s1p1d1f",
        ]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert read_file_info(back)["attrs"]["imported_from"] == fmt
        for a, b in zip(frames, read_frames(back), strict=True):
            assert_frames_equal(a, b)


def test_errors_are_reported_not_raised(tmp_path):
    source = write_frames(tmp_path / "frames.h5", [random_frame(0, n_atoms=2)])
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(source), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "exactly one of --format" in result.output
    result = runner.invoke(
        cli, ["export", str(source), "--format", "deeptb", "-o", str(tmp_path / "x"), "--basis", "Si"]
    )
    assert result.exit_code == 2 and "Si=2s2p1d" in result.output
    result = runner.invoke(
        cli, ["export", str(source), "--format", "deeptb", "-o", str(tmp_path / "x"), "--basis", "Si=1s"]
    )
    assert result.exit_code == 1 and "drop --basis" in result.output
    result = runner.invoke(
        cli, ["export", "--import-from", "deeptb", str(source), "-o", str(tmp_path / "y.h5")]
    )
    assert result.exit_code == 2 and "is not a folder" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(
        cli, ["export", "--import-from", "deeph", str(tmp_path / "empty"), "-o", str(tmp_path / "y.h5")]
    )
    assert result.exit_code == 1 and "no DeepH structure folders" in result.output
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"junk" * 100)
    result = runner.invoke(cli, ["export", str(bad), "--format", "deeph", "-o", str(tmp_path / "z")])
    assert result.exit_code == 1 and "not a readable HDF5 file" in result.output
