"""slem predict: Python API and CLI round trip on a briefly trained model."""

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from click.testing import CliRunner

from slem.cli.predict import predict as predict_cli
from slem.data.deeptb import read_deeptb
from slem.data.frame import read_file_info, read_frames
from slem.predict import predict_frames
from slem.train.config import validate_config
from slem.train.trainer import Trainer

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, tiny_si_model):
    out = tmp_path_factory.mktemp("predict") / "run"
    cfg = {
        "dataset": {"path": str(SI8)},
        "operators": ["H", "S", "D"],
        "output_dir": str(out),
        "model": dict(tiny_si_model),
        "training": {"max_steps": 2, "validate_every": 2},
    }
    torch.set_num_threads(1)
    Trainer(validate_config(cfg), progress=False).run()
    return out / "model.pt"


def _atoms(frame) -> Atoms:
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)


def test_predict_frames_api(model_path):
    ref = read_frames(SI8, [0])[0]
    from_frame = predict_frames(model_path, ref)[0]
    from_atoms = predict_frames(model_path, [_atoms(ref)])[0]
    assert set(from_frame.operators) == {"H", "S", "D"}
    assert from_frame.basis == {"Si": "1s1p"}
    np.testing.assert_array_equal(from_frame.pairs, from_atoms.pairs)
    for op in "HSD":
        np.testing.assert_array_equal(from_frame.operators[op], from_atoms.operators[op])
    # predicted pairs: 8 onsite blocks plus the directed edges within r_cut = 3.0 (4 neighbours each)
    assert len(from_frame.pairs) == 8 + 32
    # the prediction is Hermitian: H_ij(R) = H_ji(-R)^T for every predicted pair
    lookup = from_frame.pair_lookup()
    for (i, j, *r), p in lookup.items():
        q = lookup[(j, i, *(-np.array(r)).tolist())]
        np.testing.assert_allclose(from_frame.block("H", p), from_frame.block("H", q).T, atol=1e-5)


def test_predict_cli_round_trip(model_path, tmp_path):
    xyz = tmp_path / "two.extxyz"
    frames = read_frames(SI8, [0, 1])
    ase.io.write(xyz, [_atoms(f) for f in frames])
    runner = CliRunner()
    out = tmp_path / "pred.h5"
    result = runner.invoke(predict_cli, [str(model_path), str(xyz), str(SI8), "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = read_file_info(out)
    n_si8 = read_file_info(SI8)["n_frames"]
    assert info["n_frames"] == 2 + n_si8
    predicted = read_frames(out)
    api = predict_frames(model_path, frames[1])[0]
    np.testing.assert_allclose(predicted[1].operators["H"], api.operators["H"])
    np.testing.assert_allclose(predicted[3].operators["S"], api.operators["S"])  # same structure via the h5

    folder = tmp_path / "deeptb"
    result = runner.invoke(
        predict_cli,
        [str(model_path), str(xyz), "-o", str(folder), "--format", "deeptb", "--edge-chunk", "10"],
    )
    assert result.exit_code == 0, result.output
    back = read_deeptb(folder)
    assert len(back) == 2
    lookup = back[0].pair_lookup()
    for key, p in predicted[0].pair_lookup().items():
        np.testing.assert_allclose(back[0].block("H", lookup[key]), predicted[0].block("H", p), atol=1e-5)


def test_predict_cli_errors(model_path, tmp_path):
    junk = tmp_path / "junk.xyz"
    junk.write_text("not a structure\n")
    result = CliRunner().invoke(predict_cli, [str(model_path), str(junk), "-o", str(tmp_path / "x.h5")])
    assert result.exit_code == 2
    assert "ase cannot read" in result.output
