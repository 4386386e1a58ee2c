"""Progress of running jobs (aiida-slem status, submit_pipeline.py's poll), read from their folders."""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import ProcessState

from aiida_slem.progress import job_progress, md_progress, train_progress


def _metrics(steps: int = 100) -> str:
    rows = [{"kind": "validation", "step": 0, "time": 0.0, "loss": 1.0, "H_mae_meV": 30.0}]
    rows += [{"kind": "train", "step": s, "time": 0.5 * s, "loss": 1 / (s + 1)} for s in range(1, steps + 1)]
    rows += [{"kind": "validation", "step": steps, "time": 0.5 * steps, "H_mae_meV": 2.5}]
    return "\n".join(json.dumps(r) for r in rows) + '\n{"kind": "tra'  # the line being written


def test_training_progress_names_step_loss_validation_and_eta():
    # 0.5 s per step, 700 steps to go: 5.8 min
    expected = "step 100/800, loss 0.0099, validation H MAE 2.50 meV, ETA 5.8 min"
    assert train_progress(_metrics(), 800) == expected
    assert train_progress("", 800) is None
    # an epoch-based duration: the config has no max_steps, the run logs the count it resolved to
    planned = json.dumps({"kind": "run", "step": 0, "time": 0.0, "max_steps": 1400, "training_frames": 14})
    assert train_progress(planned + "\n" + _metrics(), None).startswith("step 100/1400, loss 0.0099")
    assert train_progress(_metrics(), None).startswith("step 100, loss 0.0099")


def test_md_progress_counts_pw_steps():
    assert md_progress("Entering Dynamics:    iteration =     1\n" * 12, 26) == "MD step 12/26"
    assert md_progress("     Self-consistent Calculation\n", 26) is None


def test_running_training_job_reports_from_its_folder(aiida_localhost, tmp_path):
    node = orm.CalcJobNode(computer=aiida_localhost)
    node.set_process_type("aiida.calculations:slem.train")
    config = orm.Dict({"training": {"max_steps": 800}}).store()
    node.base.links.add_incoming(config, LinkType.INPUT_CALC, "config")
    node.set_process_state(ProcessState.RUNNING)
    node.store()
    remote = orm.RemoteData(computer=aiida_localhost, remote_path=str(tmp_path))
    remote.base.links.add_incoming(node, LinkType.CREATE, "remote_folder")
    remote.store()
    assert job_progress(node) is None  # nothing written yet
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "metrics.jsonl").write_text(_metrics())
    assert job_progress(node).startswith("step 100/800, loss 0.0099")
    node.set_process_state(ProcessState.FINISHED)
    assert job_progress(node) is None  # a finished job has its results as nodes
