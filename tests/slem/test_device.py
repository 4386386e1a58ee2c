"""The model, training steps, exact resume and prediction on an accelerator (CUDA), against the CPU.

These run where torch sees a CUDA device: ``benchmarks/device_check.sh`` runs this file on a lent GPU machine.
CI has no GPU, so they are skipped there, with that reason. ``SLEM_TEST_DEVICE=cpu`` runs the same
comparisons with the CPU on both sides, which checks the tests themselves on a machine without a GPU.
On CUDA, sums over edges are scattered with atomics whose order varies, so results agree with the CPU's to
rounding, not bit for bit; the tolerances say how far.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from test_model_utils import assert_equivariant, make_graph, rand_rot, small_cluster, small_config
from test_train_run import SI8, tiny_config

from slem.data.frame import read_frames
from slem.model import build_model
from slem.predict import Predictor
from slem.train.config import validate_config
from slem.train.dataset import graph_to
from slem.train.status import WalltimeStop
from slem.train.trainer import Trainer

DEVICE = os.environ.get("SLEM_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else None)
pytestmark = [
    pytest.mark.skipif(DEVICE is None, reason="no CUDA device (SLEM_TEST_DEVICE=cpu runs these on the CPU)"),
    pytest.mark.usefixtures("one_thread"),
]


def _float64_model():
    torch.manual_seed(0)
    config = small_config(basis={"Si": "2s2p1d", "C": "1s1p"})
    graph = make_graph(small_cluster(), config.species, dict(config.r_cut))
    return build_model(config).double(), graph


def test_the_model_is_equivariant_on_the_device():
    model, graph = _float64_model()
    model = model.to(DEVICE)
    graph = graph_to(graph, torch.device(DEVICE))
    for inversion in (False, True):
        assert_equivariant(model, graph, rand_rot(1).to(DEVICE), inversion, atol=1e-11)


def test_device_outputs_equal_the_cpu_outputs():
    model, graph = _float64_model()
    with torch.no_grad():
        on_cpu = model(graph)
        on_device = model.to(DEVICE)(graph_to(graph, torch.device(DEVICE)))
    assert set(on_cpu) == set(on_device)
    for name, value in on_cpu.items():
        assert on_device[name].device.type == torch.device(DEVICE).type
        assert torch.allclose(on_device[name].cpu(), value, rtol=0.0, atol=1e-11), name


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_steps_on_the_device_follow_the_cpu(tmp_path):
    """The same 6 steps (float32, Adam) on both: the first loss agrees to rounding, and the run ends at the
    same validation error to 2 %: Adam's normalised updates let rounding grow over steps, not by more."""
    runs = {}
    for device in ("cpu", DEVICE):
        cfg = validate_config(tiny_config(tmp_path / device))
        runs[device] = Trainer(cfg, device=device, progress=False).run()
    cpu, dev = (_metrics(tmp_path / d) for d in ("cpu", DEVICE))
    first = [next(m for m in rows if m["kind"] == "train") for rows in (cpu, dev)]
    assert first[0]["loss"] == pytest.approx(first[1]["loss"], rel=1e-5)
    final = [runs[d]["best_validation"]["H_mae_meV"] for d in ("cpu", DEVICE)]
    assert final[1] == pytest.approx(final[0], rel=0.02)
    assert [m["step"] for m in dev] == [m["step"] for m in cpu]


def test_a_run_stopped_and_resumed_on_the_device_ends_where_an_uninterrupted_one_does(tmp_path):
    extra = {"ema": 0.8, "max_steps": 7}
    Trainer(validate_config(tiny_config(tmp_path / "ref", **extra)), device=DEVICE, progress=False).run()
    stopped = Trainer(validate_config(tiny_config(tmp_path / "cut", **extra)), device=DEVICE, progress=False)
    stopped.callbacks.append(lambda tr: os.kill(os.getpid(), signal.SIGUSR1) if tr.step == 3 else None)
    with pytest.raises(WalltimeStop):
        stopped.run()
    resumed = Trainer(
        validate_config(tiny_config(tmp_path / "cut", **extra)), device=DEVICE, resume="auto", progress=False
    )
    resumed.run()
    ref = torch.load(tmp_path / "ref/checkpoints/latest.pt", weights_only=False, map_location="cpu")
    res = torch.load(tmp_path / "cut/checkpoints/latest.pt", weights_only=False, map_location="cpu")
    assert ref["step"] == res["step"] == 7
    exact = torch.device(DEVICE).type == "cpu"
    for key, value in ref["model"].items():
        if exact:
            assert torch.equal(value, res["model"][key]), key
        else:
            assert torch.allclose(value, res["model"][key], rtol=1e-3, atol=1e-5), key
    losses = [[m["loss"] for m in _metrics(tmp_path / r) if m["kind"] == "train"] for r in ("ref", "cut")]
    assert np.allclose(losses[0], losses[1], rtol=0.0 if exact else 1e-4, atol=0.0)


def test_prediction_on_the_device_equals_the_cpu_prediction(si8_model_path):
    frame = read_frames(SI8, [0])[0]
    on_cpu = Predictor(si8_model_path, device="cpu").predict(frame)
    on_device = Predictor(si8_model_path, device=DEVICE).predict(frame)
    assert np.array_equal(on_cpu.pairs, on_device.pairs)
    for name, value in on_cpu.operators.items():
        scale = np.abs(value).max()
        assert np.abs(on_device.operators[name] - value).max() <= 1e-5 * scale, name


@pytest.mark.skipif(
    DEVICE is None or not DEVICE.startswith("cuda") or torch.cuda.device_count() < 2,
    reason="data-parallel training on GPUs needs two of them",
)
def test_ddp_two_ranks_on_two_gpus_agree(tmp_path):
    """``slem train --ddp`` on two GPUs (NCCL): one rank per GPU, weights equal on both after the run."""
    import subprocess

    from test_train_slow import ENV, _config, _slem

    config = _config(tmp_path, "ddp", max_steps=6, validate_every=3, batch_size=1)
    command = _slem("train", str(config), "--ddp", "--nproc", "2", "--threads", "1", "--device", "cuda")
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp/summary.json").read_text())
    assert summary["ddp"]["world_size"] == 2 and summary["ddp"]["weights_agree"], summary["ddp"]
    assert summary["steps"] == 6
