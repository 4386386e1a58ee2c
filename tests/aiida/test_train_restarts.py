"""``SlemTrainWorkChain`` error handlers, each facing a real failure provoked with tiny limits:
the walltime's SIGTERM at a fixed step, an address-space limit (``ulimit -v``) and an absurd learning
rate."""

from __future__ import annotations

import json

import pytest
import torch
from aiida import orm
from aiida.engine import run_get_node
from aiida_slem.calcjobs.train import SlemTrainCalculation
from aiida_slem.workflows.train import SlemTrainWorkChain
from aiida_test_helpers import tiny_config

from slem.cli.train import SIGNAL_AT_STEP_ENV

pytestmark = pytest.mark.slow

WALLTIME = SlemTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME.status
OOM = SlemTrainCalculation.exit_codes.ERROR_OUT_OF_MEMORY.status
NAN = SlemTrainCalculation.exit_codes.ERROR_NAN_LOSS.status
RESOURCES = {"num_machines": 1, "num_mpiprocs_per_machine": 1}


def workchain(code, dataset, config: dict, max_iterations: int = 6, **options):
    builder = SlemTrainWorkChain.get_builder()
    builder.max_iterations = orm.Int(max_iterations)
    builder.train.code = code
    builder.train.dataset = dataset
    builder.train.config = orm.Dict(config)
    builder.train.metadata.options.resources = RESOURCES
    for key, value in options.items():
        builder.train.metadata.options[key] = value
    return run_get_node(builder)


def children(node) -> list:
    return sorted(node.called, key=lambda child: child.ctime)


def state_dict(model_node) -> dict:
    from slem.model import load_model

    with model_node.local_path() as path:
        model, _ = load_model(path)
    return model.state_dict()


def test_walltime_stop_resumes_to_the_uninterrupted_weights(slem_code, si64_dataset):
    """The first run gets the walltime's SIGTERM right after step 173 (off the validation and checkpoint
    grid), sent by the run itself (slem/cli/train.py, SLEM_TEST_SIGTERM_AT_STEP) to go through the same
    handler as the watchdog's signal: a walltime calibrated on a timed run landed after the last step
    on a loaded machine."""
    stop_step = 173
    config = tiny_config(max_steps=500, validate_every=50, checkpoint_every=1000)
    reference, ref_node = run_get_node(
        SlemTrainCalculation,
        code=slem_code,
        dataset=si64_dataset,
        config=orm.Dict(config),
        metadata={"options": {"resources": RESOURCES}},
    )
    assert ref_node.is_finished_ok, ref_node.exit_message

    results, node = workchain(
        slem_code,
        si64_dataset,
        config,
        max_iterations=3,
        environment_variables={SIGNAL_AT_STEP_ENV: str(stop_step)},
    )
    assert node.is_finished_ok, node.exit_message
    calls = children(node)
    assert [c.exit_status for c in calls] == [WALLTIME, 0]
    assert calls[0].outputs.metrics["step"] == stop_step
    assert "parent_folder" in calls[1].inputs
    assert "'--resume' 'auto'" in calls[1].base.repository.get_object_content("_aiidasubmit.sh")
    assert results["metrics"]["steps"] == 500
    # the learning curve of the resumed chain is the full, gap-free one
    assert list(results["learning_curves"].get_array("train_step")) == list(range(1, 501))

    ours, theirs = state_dict(results["model"]), state_dict(reference["model"])
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_out_of_memory_halves_the_batch(slem_code, si64_dataset_two_train):
    """The address-space limit sits halfway between the peaks of batch 1 and batch 2, both measured
    first on this machine: a fixed limit broke on a machine whose libraries and thread pools map a
    different amount (measured here 1.06 and 1.26 GB; elsewhere batch 2 trained within 1.16 GB)."""
    config = tiny_config(max_steps=2, batch_size=2, validate_every=2)
    config["model"].update({"r_cut": {"Si": 6.0}, "hidden_irreps": "64x0e+64x1o+32x2e"})
    peaks = {}
    for batch_size in (1, 2):
        config["training"]["batch_size"] = batch_size
        results, node = workchain(slem_code, si64_dataset_two_train, config, max_iterations=1)
        assert node.is_finished_ok, node.exit_message
        peaks[batch_size] = results["metrics"]["peak_memory_mb"]["address_space"]
    assert peaks[2] - peaks[1] > 64, f"batch 2 must map clearly more than batch 1 for this test: {peaks}"
    limit_kb = int(512 * (peaks[1] + peaks[2]))

    results, node = workchain(slem_code, si64_dataset_two_train, config, prepend_text=f"ulimit -v {limit_kb}")
    assert node.is_finished_ok, (node.exit_message, peaks)
    calls = children(node)
    assert calls[0].exit_status == OOM, (calls[0].exit_status, calls[0].exit_message, peaks)
    assert "can't allocate memory" in calls[0].exit_message  # torch's own words, not a traceback line
    assert calls[-1].inputs.config["training"]["batch_size"] == 1
    assert "parent_folder" not in calls[-1].inputs  # a new batch size means a new data order: from scratch
    assert results["metrics"]["steps"] == 2


def test_nan_loss_lowers_the_learning_rate(slem_code, si64_dataset):
    config = tiny_config(max_steps=10, lr=10.0)
    results, node = workchain(slem_code, si64_dataset, config)
    assert node.is_finished_ok, node.exit_message
    calls = children(node)
    assert calls[0].exit_status == NAN
    assert "loss is" in calls[0].exit_message
    lrs = [c.inputs.config["training"]["lr"] for c in calls]
    assert lrs == pytest.approx([10.0 * 0.1**k for k in range(len(calls))])
    assert all(c.exit_status == NAN for c in calls[:-1]) and calls[-1].is_finished_ok
    assert results["metrics"]["steps"] == 10


def test_config_error_at_run_time_is_not_retried(slem_code, si64_dataset):
    """A model section that passes the submission check but not the model built from the data fails once,
    then stops (hidden_irreps without 0e was the example; the one schema refuses that at submission)."""
    config = tiny_config(max_steps=2)
    config["model"]["species"] = ["Si", "C"]  # no C in the data to give its basis: known only at run time
    _, node = workchain(slem_code, si64_dataset, config)
    assert node.exit_status == SlemTrainWorkChain.exit_codes.ERROR_UNRECOVERABLE_FAILURE.status
    calls = children(node)
    assert len(calls) == 1
    assert calls[0].exit_status == SlemTrainCalculation.exit_codes.ERROR_CONFIG.status
    assert "species 'C' has no basis" in json.dumps(calls[0].outputs.metrics.get_dict())
