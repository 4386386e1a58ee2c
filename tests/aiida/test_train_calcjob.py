"""A real ``slem.train`` job on localhost (CPU, a few steps) and a ``slem.predict`` job with its model,
checked against ``slem predict`` run by hand on the same model file."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.predict import SlemPredictCalculation
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_test_helpers import slem_executable, tiny_config
from ase import Atoms

from slem.data.frame import read_frames

pytestmark = pytest.mark.slow


def train(code, dataset, config: dict, **inputs):
    builder = SlemTrainCalculation.get_builder()
    builder.code = code
    builder.dataset = dataset
    builder.config = orm.Dict(config)
    builder.metadata.options.resources = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    for key, value in inputs.items():
        builder[key] = value
    return run_get_node(builder)


def test_training_job_produces_a_model_whose_predictions_match_slem_predict(
    slem_code, si64_dataset, tmp_path
):
    results, node = train(slem_code, si64_dataset, tiny_config(max_steps=10))
    assert node.is_finished_ok, (node.exit_status, node.exit_message)

    model = results["model"]
    assert model.species == ["Si"]
    assert model.base.attributes.get("basis") == {"Si": "1s1p"}
    assert model.r_cut == {"Si": 2.6}
    assert model.n_params > 1000
    assert model.base.attributes.get("config")["steps"] == 10
    with model.local_path() as path:
        assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.metrics["step"] in (5, 10) and model.metrics["H_mae_meV"] > 0
    # queryable: the model can be found by its validation error
    found = (
        orm.QueryBuilder()
        .append(type(model), filters={"attributes.metrics.H_mae_meV": {"<": 1e6}, "id": model.pk})
        .count()
    )
    assert found == 1

    metrics = results["metrics"].get_dict()
    assert metrics["state"] == "finished" and metrics["steps"] == 10 and metrics["n_params"] == model.n_params
    curves = results["learning_curves"]
    assert list(curves.get_array("train_step")) == list(range(1, 11))
    assert np.all(np.isfinite(curves.get_array("train_loss")))
    assert list(curves.get_array("validation_step")) == [0, 5, 10]  # step 0 is the untrained start
    with results["learning_curve_plot"].open(mode="rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "remote_folder" in results

    # the model file loads, and the predict CalcJob gives what slem predict gives when run by hand
    from slem.model import load_model

    with model.local_path() as path:
        load_model(path)
        (tmp_path / "model.pt").write_bytes(path.read_bytes())
    with si64_dataset.local_path() as path:
        (tmp_path / "frames.h5").write_bytes(path.read_bytes())
    subprocess.run(
        [slem_executable(), "predict", "model.pt", "frames.h5", "-o", "by_hand.h5"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    by_hand = read_frames(tmp_path / "by_hand.h5")

    predicted, predict_node = run_get_node(
        SlemPredictCalculation,
        code=slem_code,
        model=model,
        dataset=si64_dataset,
        metadata=_predict_metadata(),
    )
    assert predict_node.is_finished_ok, predict_node.exit_message
    frames = predicted["predictions"].get_frames()
    assert len(frames) == len(by_hand) == 2
    for mine, theirs in zip(frames, by_hand, strict=True):
        np.testing.assert_array_equal(mine.pairs, theirs.pairs)
        for op in ("H", "S"):
            np.testing.assert_array_equal(mine.operators[op], theirs.operators[op])

    frame = by_hand[0]
    structure = orm.StructureData(
        ase=Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    )
    predicted, predict_node = run_get_node(
        SlemPredictCalculation, code=slem_code, model=model, structure=structure, metadata=_predict_metadata()
    )
    assert predict_node.is_finished_ok, predict_node.exit_message
    single = predicted["operators"].get_frame()
    lookup = single.pair_lookup()
    theirs = frame.blocks("H")
    assert set(lookup) == set(theirs)
    mine = single.blocks("H")
    worst = max(float(np.abs(mine[key] - theirs[key]).max()) for key in theirs)
    assert worst < 1e-4  # positions pass through extended XYZ (1e-8 Angstrom); float32 model


def _predict_metadata() -> dict:
    return {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}


def test_fine_tuning_job_starts_from_the_parent_model(slem_code, si64_dataset):
    """``parent_model``: the job trains on from the parent's weights, and says so in its metrics."""
    parent_results, parent_node = train(slem_code, si64_dataset, tiny_config(max_steps=10))
    assert parent_node.is_finished_ok, parent_node.exit_message
    parent = parent_results["model"]
    results, node = train(
        slem_code, si64_dataset, tiny_config(max_steps=2, validate_every=1), parent_model=parent
    )
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = results["metrics"].get_dict()
    assert metrics["init_model_sha256"] == parent.sha256
    # two more steps keep the parent's accuracy (2 steps from scratch are far worse)
    assert metrics["best_validation"]["loss"] < 1.5 * parent.metrics["loss"]
    assert node.inputs.parent_model.uuid == parent.uuid

    config = tiny_config(max_steps=2)
    config["model"]["n_layers"] = 2  # another architecture: refused at run time with the differences
    _, refused = train(slem_code, si64_dataset, config, parent_model=parent)
    assert refused.exit_status == SlemTrainCalculation.exit_codes.ERROR_CONFIG.status
    assert "'n_layers': (1, 2)" in refused.exit_message
