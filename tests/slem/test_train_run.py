"""End-to-end training on projected Si8 frames: outputs, exact resume, failure exit codes."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from slem.cli.train import train as train_cli
from slem.data.frame import read_frames, write_frames
from slem.train.config import ConfigError, validate_config
from slem.train.status import WalltimeStop
from slem.train.trainer import Trainer

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"
TINY_MODEL = {
    "r_cut": {"Si": 4.0},
    "n_layers": 1,
    "hidden_irreps": "8x0e+4x1o+4x2e",
    "latent_dim": 16,
    "latent_hidden": [16],
    "n_radial": 6,
    "avg_num_neighbors": 16.0,
    "overlap_hidden": [16],
}


def tiny_config(out, **training) -> dict:
    assert SI8.is_file(), f"{SI8} is missing; run tests/data/make_si8_frames.py"
    t = {"max_steps": 6, "batch_size": 2, "lr": 5e-3, "validate_every": 2, "checkpoint_every": 100, "seed": 5}
    t.update(training)
    return {
        "dataset": {"path": str(SI8)},
        "operators": ["H", "S"],
        "model": dict(TINY_MODEL),
        "output_dir": str(out),
        "training": t,
    }


pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(path):
    return torch.load(path, weights_only=False)


def test_train_outputs(tmp_path):
    cfg = validate_config(tiny_config(tmp_path / "run", ema=0.9))
    summary = Trainer(cfg, progress=False).run()
    out = tmp_path / "run"
    for name in (
        "model.pt",
        "metrics.jsonl",
        "summary.json",
        "learning_curve.png",
        "checkpoints/latest.pt",
        "checkpoints/best.pt",
        "config.json",
    ):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["steps"] == 6 and on_disk["n_params"] == summary["n_params"] > 0
    assert (
        on_disk["species"] == ["Si"]
        and on_disk["basis"] == {"Si": "1s1p"}
        and on_disk["r_cut"] == {"Si": 4.0}
    )
    assert on_disk["best_validation"]["H_mae_meV"] > 0 and on_disk["test"]["S_mae"] > 0
    import hashlib

    assert on_disk["model_sha256"] == hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()
    from slem.model import load_model

    model, meta = load_model(out / "model.pt", expected_basis={"Si": "1s1p"})
    assert meta["training_data_sha256"]["dataset"] == hashlib.sha256(SI8.read_bytes()).hexdigest()
    kinds = [json.loads(line)["kind"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("train") == 6 and kinds.count("validation") == 4  # steps 0, 2, 4, 6
    assert kinds[0] == "run"  # the step count, logged once at the start


@pytest.mark.parametrize("scheduler", ["plateau", pytest.param("cosine", marks=pytest.mark.slow)])
def test_exact_resume_after_stop(tmp_path, scheduler):
    extra = {"ema": 0.8, "scheduler": scheduler, "max_steps": 7, "onsite_shift": True}
    Trainer(validate_config(tiny_config(tmp_path / "ref", **extra)), progress=False).run()

    stopped = Trainer(validate_config(tiny_config(tmp_path / "cut", **extra)), progress=False)
    # a real signal through the installed handler, as a scheduler's walltime warning would arrive
    stopped.callbacks.append(lambda tr: os.kill(os.getpid(), signal.SIGUSR1) if tr.step == 3 else None)
    with pytest.raises(WalltimeStop):
        stopped.run()
    assert _weights(tmp_path / "cut/checkpoints/latest.pt")["step"] == 3
    Trainer(validate_config(tiny_config(tmp_path / "cut", **extra)), resume="auto", progress=False).run()

    ref, res = (
        _weights(tmp_path / "ref/checkpoints/latest.pt"),
        _weights(tmp_path / "cut/checkpoints/latest.pt"),
    )
    assert ref["step"] == res["step"] == 7
    for key in ref["model"]:
        assert torch.equal(ref["model"][key], res["model"][key]), key
    for key in ref["ema"]["shadow"]:
        assert torch.equal(ref["ema"]["shadow"][key], res["ema"]["shadow"][key]), key
    assert ref["optimizer"]["param_groups"][0]["lr"] == res["optimizer"]["param_groups"][0]["lr"]
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut/metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(x)["step"] for x in (tmp_path / "ref/metrics.jsonl").read_text().splitlines()]


def _write_config(tmp_path, cfg) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_cli_exit_codes(tmp_path, monkeypatch):
    runner = CliRunner()
    bad = tiny_config(tmp_path / "bad")
    bad["training"]["learning_rate"] = 1.0
    result = runner.invoke(train_cli, [str(_write_config(tmp_path, bad))])
    assert result.exit_code == 2
    assert "did you mean" in result.output or "did you mean" in str(result.stderr_bytes)
    assert json.loads((tmp_path / "bad/status.json").read_text())["state"] == "config_error"
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == ["status.json"]  # no model, no checkpoint

    frames = read_frames(SI8, [0, 6])
    onsite = frames[0].block_offsets[frames[0].pair_lookup()[(0, 0, 0, 0, 0)]]
    frames[0].operators["H"][onsite] = np.nan  # a corrupt block: refused when the dataset is read
    nan_file = tmp_path / "nan.h5"
    write_frames(nan_file, frames, split={"train": [0], "validation": [1]})
    cfg = tiny_config(tmp_path / "corrupt")
    cfg["dataset"]["path"] = str(nan_file)
    result = runner.invoke(train_cli, [str(_write_config(tmp_path, cfg)), "--device", "cpu"])
    assert result.exit_code == 2
    assert json.loads((tmp_path / "corrupt/status.json").read_text())["state"] == "config_error"

    from slem.train.loss import BlockLoss

    original = BlockLoss.__call__

    def nan_loss(self, *args, **kwargs):  # a diverging run: the loss turns NaN at the first step
        loss, parts = original(self, *args, **kwargs)
        return loss * float("nan"), parts

    monkeypatch.setattr(BlockLoss, "__call__", nan_loss)
    nan_config = _write_config(tmp_path, tiny_config(tmp_path / "nan"))
    result = runner.invoke(train_cli, [str(nan_config), "--device", "cpu"])
    assert result.exit_code == 121
    status = json.loads((tmp_path / "nan/status.json").read_text())
    assert status["state"] == "nan" and "loss is nan" in status["message"]
    monkeypatch.setattr(BlockLoss, "__call__", original)

    def oom(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB")

    monkeypatch.setattr(Trainer, "_train_step", oom)
    result = runner.invoke(train_cli, [str(_write_config(tmp_path, tiny_config(tmp_path / "oom")))])
    assert result.exit_code == 122
    assert json.loads((tmp_path / "oom/status.json").read_text())["state"] == "oom"

    def cpu_allocation_failure(self):  # torch's CPU allocator raises a plain RuntimeError
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 12874752 bytes")

    monkeypatch.setattr(Trainer, "_train_step", cpu_allocation_failure)
    result = runner.invoke(train_cli, [str(_write_config(tmp_path, tiny_config(tmp_path / "cpu_oom")))])
    assert result.exit_code == 122
    status = json.loads((tmp_path / "cpu_oom/status.json").read_text())
    assert status["state"] == "oom" and "lower training.batch_size" in status["message"]

    def bug(self):
        raise RuntimeError("shape mismatch")  # any other RuntimeError is a crash, not a memory problem

    monkeypatch.setattr(Trainer, "_train_step", bug)
    result = runner.invoke(train_cli, [str(_write_config(tmp_path, tiny_config(tmp_path / "bug")))])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)
    assert not (tmp_path / "bug/status.json").exists()


def test_a_failed_learning_curve_plot_keeps_the_finished_run(tmp_path, monkeypatch):
    """The plot comes after the model and summary are written; its failure only costs the PNG."""
    from slem.train import trainer as trainer_module

    def no_matplotlib(*_):
        raise ImportError("failed to map segment from shared object")

    monkeypatch.setattr(trainer_module, "plot_learning_curve", no_matplotlib)
    config = _write_config(tmp_path, tiny_config(tmp_path / "run", max_steps=2))
    result = CliRunner().invoke(train_cli, [str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run/status.json").read_text())["state"] == "finished"
    assert (tmp_path / "run/model.pt").is_file() and not (tmp_path / "run/learning_curve.png").exists()
    peaks = json.loads((tmp_path / "run/summary.json").read_text())["peak_memory_mb"]
    assert 0 < peaks["rss"] <= peaks.get("address_space", peaks["rss"])


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path):
    runner = CliRunner()
    config = _write_config(tmp_path, tiny_config(tmp_path / "run", max_steps=2))
    assert runner.invoke(train_cli, [str(config)]).exit_code == 0
    assert runner.invoke(train_cli, [str(config)]).exit_code == 2
    result = runner.invoke(train_cli, [str(config), "--resume", "auto"])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "run/status.json").read_text())["state"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("fermi_bands", [0, 4])
def test_eigenvalue_loss_trains(tmp_path, fermi_bands):
    cfg = validate_config(tiny_config(tmp_path / "eig", eigenvalue_loss=0.5, eigenvalue_kpoints=2,
                                      max_steps=3, eigenvalue_fermi_bands=fermi_bands))
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    records = [json.loads(x) for x in (tmp_path / "eig/metrics.jsonl").read_text().splitlines()]
    eig = [r["eigenvalue"] for r in records if r["kind"] == "train"]
    assert len(eig) == 3 and all(np.isfinite(eig)) and eig[0] > 0


def test_epochs_set_the_number_of_steps(tmp_path):
    cfg = tiny_config(tmp_path / "ep", batch_size=2, validate_every=100)
    del cfg["training"]["max_steps"]
    cfg["training"]["epochs"] = 2
    summary = Trainer(validate_config(cfg), progress=False).run()
    assert summary["steps"] == 2 * 3  # 6 training frames in batches of 2


def test_batch_atoms_grows_the_batch_of_small_frames(tmp_path):
    """batch_atoms 20 on 8-atom frames: ceil(20 / 8) = 3 frames per batch, so an epoch is 2 steps."""
    from slem.train.config import TrainingSection, batch_size_for

    cfg = tiny_config(tmp_path / "ba", batch_size=1, batch_atoms=20, validate_every=100)
    del cfg["training"]["max_steps"]
    cfg["training"]["epochs"] = 2
    summary = Trainer(validate_config(cfg), progress=False).run()
    assert summary["batch_size"] == 3 and summary["steps"] == 2 * 2  # 6 training frames in batches of 3
    # the rule: batch_size is a floor, the batch never exceeds the training frames, no batch_atoms: unchanged
    assert batch_size_for(TrainingSection(batch_size=4, batch_atoms=8), [3] * 10) == 4
    assert batch_size_for(TrainingSection(batch_size=1, batch_atoms=8), [3] * 10) == 3
    assert batch_size_for(TrainingSection(batch_size=1, batch_atoms=64), [3] * 5) == 5
    assert batch_size_for(TrainingSection(batch_size=2), [3] * 5) == 2
    with pytest.raises(Exception, match="batch_atoms"):
        validate_config(tiny_config(tmp_path / "bad", batch_atoms=0))


def test_fermi_band_loss_refuses_frames_without_an_electron_count(tmp_path):
    """No n_electrons and no D to count them: refused before the first step, naming the frame and the fix."""
    import dataclasses

    frames = [dataclasses.replace(f, metadata={**f.metadata, "n_electrons": None, "label": f"bare{i}"},
                                  operators={k: v for k, v in f.operators.items() if k != "D"})
              for i, f in enumerate(read_frames(SI8, [0, 1]))]
    bare = tmp_path / "bare.h5"
    write_frames(bare, frames, split={"train": [0], "validation": [1]})
    cfg = tiny_config(tmp_path / "run", eigenvalue_loss=0.1, eigenvalue_fermi_bands=4)
    cfg["dataset"]["path"] = str(bare)
    with pytest.raises(ConfigError, match="bare0: .*n_electrons.*eigenvalue_fermi_bands: 0"):
        Trainer(validate_config(cfg), progress=False).run()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_fermi_band_loss_refuses_an_overlap_tolerance_that_keeps_no_empty_band(tmp_path):
    """The tiny Si8 basis keeps 16 of 32 bands at overlap tolerance 0.5, all of them occupied: refused before
    the first step, not at the step whose batch holds that frame; 0.3 keeps 18 and trains."""
    cfg = tiny_config(tmp_path / "run", eigenvalue_loss=0.1, eigenvalue_kpoints=2, eigenvalue_fermi_bands=4,
                      eigenvalue_overlap_tolerance=0.5, max_steps=1)
    refusal = "training frame 0: 16 occupied bands leave no empty band among the 16 .*tolerance 0.5"
    with pytest.raises(ConfigError, match=refusal):
        Trainer(validate_config(cfg), progress=False).run()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    cfg["training"]["eigenvalue_overlap_tolerance"] = 0.3
    trainer = Trainer(validate_config(cfg), progress=False)
    trainer.setup()
    assert trainer.n_occupied == [16] * len(trainer.data.train)
    # the check solved every training frame's reference bands, which the loss then reuses at each step
    assert sorted(trainer._reference_bands) == list(range(len(trainer.data.train)))
    assert trainer.run()["steps"] == 1


def test_epochs_within_step_bounds_set_the_number_of_steps(tmp_path):
    """epochs x batches per epoch, raised to the lower bound and cut at the upper one; the run logs the count
    it resolved to (a ``run`` record, read by live progress)."""
    from slem.train.duration import training_steps

    cfg = tiny_config(tmp_path / "lo", batch_size=2, validate_every=100)
    del cfg["training"]["max_steps"]
    cfg["training"].update(epochs=1, epoch_step_bounds=[4, 5])
    assert Trainer(validate_config(cfg), progress=False).run()["steps"] == 4  # 1 epoch = 3 batches of 2
    plan = [json.loads(x) for x in (tmp_path / "lo/metrics.jsonl").read_text().splitlines()][0]
    assert (plan["kind"], plan["max_steps"], plan["training_frames"], plan["batch_size"]) == ("run", 4, 6, 2)
    assert training_steps(None, 100, [800, 2000], 6) == 800  # Si8's fast default keeps its 800 steps
    assert training_steps(None, 100, [800, 2000], 14) == 1400  # four structures' pipeline
    assert training_steps(None, 100, [800, 2000], 40) == 2000
    assert training_steps(None, 3, None, 7) == 21 and training_steps(50, None, None, 7) == 50
