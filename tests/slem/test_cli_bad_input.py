"""Bad input to ``slem predict``, ``slem bands`` and ``slem train``: one line that names the fix, exit code 2,
and nothing written (issue #18, item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from click.testing import CliRunner

from slem.cli.bands import bands as bands_cli
from slem.cli.predict import predict as predict_cli
from slem.cli.train import train as train_cli
from slem.data.frame import FrameFormatError, frame_from_blocks, read_frames, write_frames
from slem.data.neighbors import MIN_DISTANCE_ANGSTROM, CloseAtomsError, check_min_distance
from slem.model.io import ModelFileError, load_model

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"


def _refused(result, *expected: str) -> str:
    """The command failed with exit code 2 and one line on stderr holding every expected piece."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    assert "Traceback" not in result.output and "Errno" not in lines[0]
    return lines[0]


def _only(folder: Path, *names: str) -> None:
    """Nothing but the inputs in the folder: no output, no temporary file left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _predict(model: Path, *args: str):
    return CliRunner().invoke(predict_cli, [str(model), *args])


def test_predict_refuses_atoms_closer_than_the_pipeline_minimum(si8_model_path, tmp_path):
    xyz = tmp_path / "close.xyz"
    ase.io.write(xyz, Atoms("Si3", positions=[[0, 0, 0], [2.3, 0, 0], [2.4, 0, 0]], cell=[9] * 3, pbc=True))
    line = _refused(
        _predict(si8_model_path, str(xyz), "-o", str(tmp_path / "out.h5")),
        f"structure 0 of {xyz}",
        "atoms 1 (Si) and 2 (Si)",
        "0.100 Angstrom apart",
        f"minimum {MIN_DISTANCE_ANGSTROM}",
        "remove duplicated or overlapping atoms",
    )
    assert line.startswith("slem predict: ")
    _only(tmp_path, "close.xyz")


def test_close_atoms_through_a_periodic_image_and_the_pipeline_rule():
    # a 0.3 Angstrom cell: every atom sits 0.3 Angstrom from its own image
    with pytest.raises(CloseAtomsError, match=r"atom 0 \(Si\) and its periodic image .* 0\.300 Angstrom"):
        check_min_distance(np.zeros((1, 3)), np.diag([0.3, 5.0, 5.0]), [True] * 3, ["Si"])
    # apart by the minimum is fine, and so is a molecule without a cell
    check_min_distance(np.array([[0, 0, 0], [0.5, 0, 0]]), np.zeros((3, 3)), [False] * 3, ["H", "H"])
    # calcjobs/checks.py refuses by the same number (read as text: this test needs no AiiDA)
    checks = (Path(__file__).parents[2] / "calcjobs" / "checks.py").read_text()
    assert "from slem.data.neighbors import MIN_DISTANCE_ANGSTROM" in checks


def test_predict_names_the_element_the_model_lacks(si8_model_path, tmp_path):
    xyz = tmp_path / "sic.xyz"
    ase.io.write(xyz, Atoms("SiC", positions=[[0, 0, 0], [1.9, 0, 0]], cell=[9] * 3, pbc=True))
    _refused(
        _predict(si8_model_path, str(xyz), "-o", str(tmp_path / "out.h5")),
        f"structure 0 of {xyz} has element C",
        "model species: Si",
        "use a model trained with C",
    )
    _only(tmp_path, "sic.xyz")


def test_truncated_model_file_is_corrupt_or_truncated(si8_model_path, tmp_path):
    data = si8_model_path.read_bytes()
    for name, cut in (("half.pt", len(data) // 2), ("head.pt", 100), ("tail.pt", len(data) - 10)):
        model = tmp_path / name
        model.write_bytes(data[:cut])
        _refused(
            _predict(model, str(SI8), "-o", str(tmp_path / "out.h5")),
            f"cannot read model file {model}: it is corrupt or truncated",
            "copy it again",
        )
        with pytest.raises(ModelFileError, match="corrupt or truncated"):
            load_model(model)
        model.unlink()
    _only(tmp_path)
    # a missing file is not called corrupt
    with pytest.raises(ModelFileError, match="No such file"):
        load_model(tmp_path / "absent.pt")


def _nan_frames(path: Path, frame_index: int, operator: str = "H") -> Path:
    frames = read_frames(SI8)
    frames[frame_index].operators[operator][20] = np.nan  # in the second block (1s1p: 16 values each)
    return write_frames(path, frames, split={"train": [0, 1], "validation": [2]})


def test_nan_in_a_frame_is_named_when_loaded(tmp_path):
    path = _nan_frames(tmp_path / "nan.h5", 2)
    pair = read_frames(SI8, [2])[0].pairs[1].tolist()
    expected = rf"frame 2 has 1 NaN or inf value\(s\) in H \(first in block i={pair[0]}, j={pair[1]}, R="
    with pytest.raises(FrameFormatError, match=expected):
        read_frames(path)
    read_frames(path, [0, 1])  # the other frames still load
    frames = read_frames(SI8, [0])
    frames[0].positions[3, 1] = np.inf
    write_frames(tmp_path / "inf.h5", frames)
    with pytest.raises(FrameFormatError, match="frame 0 has 1 NaN or inf value.* in positions; regenerate"):
        read_frames(tmp_path / "inf.h5")


def test_predict_refuses_a_frames_file_with_nan(si8_model_path, tmp_path):
    path = _nan_frames(tmp_path / "nan.h5", 1, "S")
    _refused(
        _predict(si8_model_path, str(path), "-o", str(tmp_path / "out.h5")),
        f"{path}: frame 1 has 1 NaN or inf value(s) in S",
        "regenerate this frame",
    )
    _only(tmp_path, "nan.h5")


def test_train_refuses_a_dataset_with_nan(tmp_path, tiny_si_model):
    data = _nan_frames(tmp_path / "nan.h5", 1)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({
        "dataset": {"path": "nan.h5"},
        "operators": ["H", "S"],
        "output_dir": "run",
        "model": tiny_si_model,
        "training": {"max_steps": 1, "validate_every": 1},
    }))
    result = CliRunner().invoke(train_cli, [str(config), "--device", "cpu", "--no-progress"])
    _refused(result, "slem train: config_error: ", f"{data}: frame 1 has 1 NaN or inf value(s) in H")
    # the documented failure record (docs/training.md), and nothing else: no model, no checkpoint
    _only(tmp_path / "run", "status.json")
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "config_error" and status["exit_code"] == 2 and "frame 1" in status["message"]


def test_train_refuses_a_truncated_dataset_with_exit_2(tmp_path, tiny_si_model):
    """A frames file cut short (a copy interrupted, a full disk elsewhere): exit 2 as documented, not 1."""
    raw = SI8.read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[: len(raw) // 2])
    config = tmp_path / "train.json"
    config.write_text(json.dumps({
        "dataset": {"path": "cut.h5"},
        "output_dir": "run",
        "model": tiny_si_model,
        "training": {"max_steps": 1},
    }))
    result = CliRunner().invoke(train_cli, [str(config), "--device", "cpu", "--no-progress"])
    _refused(result, "slem train: config_error: ", "cut.h5 is not a readable HDF5", "truncated or corrupt")
    _only(tmp_path / "run", "status.json")  # no model, no checkpoint
    assert (tmp_path / "cut.h5").read_bytes() == raw[: len(raw) // 2]


def test_bands_refuses_a_reference_in_another_basis(si8_model_path, tmp_path):
    frame = read_frames(SI8, [0])[0]
    blocks = {op: {k: b[:1, :1] for k, b in frame.blocks(op).items()} for op in frame.operators}
    reference = write_frames(
        tmp_path / "ref_1s.h5",
        [frame_from_blocks(frame.numbers, frame.positions, frame.cell, frame.pbc, {"Si": "1s"}, blocks)],
    )
    structure = write_frames(tmp_path / "si8.h5", [frame])
    png = tmp_path / "bands.png"
    result = CliRunner().invoke(
        bands_cli,
        [str(si8_model_path), str(structure), "--reference", str(reference), "--npoints", "4", "-o", str(png),
         "--data", str(tmp_path / "bands.json")],
    )
    _refused(
        result,
        f"reference frame ({reference}) is in basis {{'Si': '1s'}}",
        "model predicts basis {'Si': '1s1p'}",
        "give a reference projected onto the model's basis",
    )
    _only(tmp_path, "ref_1s.h5", "si8.h5")
