"""``slem validate``: the report, plots and verdict of predicted frames against their reference, written on
the compute node; bad input ends with one line that names the fix, exit code 2 and no report (issue #18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from slem.bands import band_energies
from slem.cli.validate import validate as validate_cli
from slem.data.frame import read_frames, write_frames
from slem.evaluate.kpoints import validation_kpoints

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
SETTINGS = {"kpath_npoints": 8, "n_random_k": 2, "thresholds": {"H_mae_meV": 0.1}}
SHIFT_EV, PW_OFFSET_EV = 0.01, 0.3


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Two Si8 reference frames, their 'predictions' (H + 10 meV S: every band 10 meV up), settings and
    pretend pw.x eigenvalues (the reference bands 0.3 eV down) at the validation k-points."""
    root = tmp_path_factory.mktemp("validate")
    reference = read_frames(SI8, [0, 1])
    for label, frame in zip("ab", reference, strict=True):
        frame.metadata["label"] = label
    predicted = read_frames(SI8, [0, 1])
    for label, frame, ref in zip("ab", predicted, reference, strict=True):
        frame.metadata["label"] = label
        frame.operators["H"] = ref.operators["H"] + SHIFT_EV * ref.operators["S"]
    pw = {}
    for label, frame in zip("ab", reference, strict=True):
        kinfo = validation_kpoints(frame.cell, 8, 2, 0, positions=frame.positions, pbc=frame.pbc)
        kpts = np.asarray(kinfo["kpoints"])
        pw[label] = {"kpoints": kpts.tolist(), "bands": (band_energies(frame, kpts) - PW_OFFSET_EV).tolist()}
    paths = {
        "reference": write_frames(root / "reference.h5", reference),
        "predictions": write_frames(root / "predictions.h5", predicted),
        "one_frame": write_frames(root / "one.h5", predicted[:1]),
        "settings": root / "settings.json",
        "pw": root / "pw.json",
        "pw_shifted": root / "pw_shifted.json",
        "splits": root / "splits.json",
    }
    paths["settings"].write_text(json.dumps(SETTINGS))
    paths["pw"].write_text(json.dumps(pw))
    shifted = {k: {**v, "kpoints": (np.asarray(v["kpoints"]) + 0.01).tolist()} for k, v in pw.items()}
    paths["pw_shifted"].write_text(json.dumps(shifted))
    paths["splits"].write_text(json.dumps({"a": "in_distribution", "b": "held_out_structure"}))
    return paths


def run(files: dict, tmp_path: Path, *extra: str):
    args = [str(files["predictions"]), str(files["reference"]), "-o", str(tmp_path / "report.json")]
    args += ["--plots", str(tmp_path / "plots"), "--settings", str(files["settings"]), *extra]
    return CliRunner().invoke(validate_cli, args)


def test_report_plots_and_verdict(files, tmp_path):
    result = run(files, tmp_path, "--pw-bands", str(files["pw"]), "--splits", str(files["splits"]))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    for label in "ab":
        bands = report["bands"][label]
        assert bands["n_valence"] == 16  # the frame's own n_electrons (32): no electron count was given
        assert bands["vs_lcao"]["all"]["offset_meV"] == pytest.approx(1000 * SHIFT_EV, abs=1e-6)
        assert bands["vs_lcao"]["all"]["valence_mae_meV"] == pytest.approx(0.0, abs=1e-6)
        assert bands["lcao_vs_pw"]["all"]["offset_meV"] == pytest.approx(1000 * PW_OFFSET_EV, abs=1e-6)
    assert report["summary"]["offset_vs_pw_meV"] == pytest.approx(1000 * (SHIFT_EV + PW_OFFSET_EV), abs=1e-6)
    assert report["summary"]["H_mae_meV"] > 0.1 and not report["verdict"]["passed"]
    assert "verdict: FAILED (H_mae_meV)" in result.output
    assert set(report["splits"]) == {"in_distribution", "held_out_structure"}
    assert report["verdict"]["frames"] == "in_distribution"
    assert {"parity", "bands_a", "bands_b"} <= set(report["plots"])
    for filename in report["plots"].values():
        assert (tmp_path / "plots" / filename).read_bytes()[:4] == b"\x89PNG"


def test_given_electron_counts_win(files, tmp_path):
    electrons = tmp_path / "electrons.json"
    electrons.write_text(json.dumps({"a": 30.0}))
    assert run(files, tmp_path, "--electrons", str(electrons)).exit_code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["bands"]["a"]["n_valence"] == 15 and report["bands"]["b"]["n_valence"] == 16


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("frame_count", ("holds 1 frame(s)", "predict exactly the reference frames")),
        ("pw_kpoints", ("other k-points", "rerun the pw.x bands step")),
        ("pw_label", ("pw.x bands for frames ['c']",)),
        ("setting", ("unknown validation setting(s) ['kpath_npoint']",)),
        ("split_missing", ("frames ['b'] have no split",)),
        ("split_unknown", ("unknown split(s) ['held_out']",)),
        ("json", ("is not valid JSON", "the validation settings")),
        ("electrons", ("should hold {frame label: electron count}",)),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_report(files, tmp_path, case, expected):
    bad = tmp_path / "bad.json"
    extra: list[str] = []
    if case == "frame_count":
        extra = []
    elif case == "pw_kpoints":
        extra = ["--pw-bands", str(files["pw_shifted"])]
    elif case == "pw_label":
        bad.write_text(json.dumps({"c": {"kpoints": [[0, 0, 0]], "bands": [[0.0]]}}))
        extra = ["--pw-bands", str(bad)]
    elif case == "setting":
        bad.write_text(json.dumps({"kpath_npoint": 8}))
        extra = ["--settings", str(bad)]
    elif case == "split_missing":
        bad.write_text(json.dumps({"a": "in_distribution"}))
        extra = ["--splits", str(bad)]
    elif case == "split_unknown":
        bad.write_text(json.dumps({"a": "in_distribution", "b": "held_out"}))
        extra = ["--splits", str(bad)]
    elif case == "json":
        bad.write_text('{"kpath_npoints": 8,')
        extra = ["--settings", str(bad)]
    elif case == "electrons":
        bad.write_text("[32, 32]")
        extra = ["--electrons", str(bad)]
    if case == "frame_count":
        args = [str(files["one_frame"]), str(files["reference"]), "-o", str(tmp_path / "report.json")]
        result = CliRunner().invoke(validate_cli, [*args, "--plots", str(tmp_path / "plots")])
    else:
        result = run(files, tmp_path, *extra)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slem validate: "), result.stderr
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    assert not (tmp_path / "report.json").exists()
