"""Progress of a job that is still running, read from its working folder: a training's step, loss,
validation error and ETA (``output/metrics.jsonl``), an MD run's step (pw.x's output).

The job's own files are the only live record: AiiDA learns nothing about a CalcJob until it ends.
Reading goes through the computer's transport, so it works for remote clusters as for localhost.
"""

from __future__ import annotations

import json
import pathlib
import tempfile

TRAIN_FILE = "output/metrics.jsonl"
PW_OUTPUT = "aiida.out"


def train_progress(text: str, max_steps: int | None) -> str | None:
    """'step 420/800, loss 0.0031, validation H MAE 2.2 meV, ETA 3.1 min' from metrics.jsonl text; the total
    is the run's logged step count, else ``max_steps`` of its config."""
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line being written
            continue
    train = [r for r in rows if r.get("kind") == "train" and "step" in r]
    if not train:
        return None
    last = train[-1]
    # the run's own step count (an epoch-based duration resolves only once the trainer has the data)
    planned = [r["max_steps"] for r in rows if r.get("kind") == "run" and r.get("max_steps")]
    max_steps = planned[-1] if planned else max_steps
    out = f"step {last['step']}" + (f"/{max_steps}" if max_steps else "")
    if "loss" in last:
        out += f", loss {last['loss']:.3g}"
    validation = [r for r in rows if r.get("kind") == "validation" and "H_mae_meV" in r]
    if validation:
        out += f", validation H MAE {validation[-1]['H_mae_meV']:.2f} meV"
    # the rate over the last 50 steps: a resumed run's earlier rows came from another job
    recent = train[-50:]
    steps = recent[-1]["step"] - recent[0]["step"]
    if max_steps and steps > 0 and "time" in recent[0]:
        seconds = (recent[-1]["time"] - recent[0]["time"]) / steps * max(max_steps - last["step"], 0)
        out += f", ETA {seconds / 60:.1f} min"
    return out


def md_progress(text: str, nstep: int | None) -> str | None:
    """'MD step 12/26' from pw.x's output of an MD run."""
    done = text.count("Entering Dynamics")
    if not done:
        return None
    return f"MD step {done}" + (f"/{nstep}" if nstep else "")


def _remote_text(node, relative: str) -> str | None:
    remote = node.outputs.remote_folder
    with tempfile.TemporaryDirectory() as tmp, remote.computer.get_transport() as transport:
        path = f"{remote.get_remote_path()}/{relative}"
        if not transport.isfile(path):
            return None
        local = pathlib.Path(tmp) / "file"
        transport.getfile(path, str(local))
        return local.read_text(errors="replace")


def job_progress(node) -> str | None:
    """A one-line progress report for a running slem.train or pw.x MD CalcJob; None for anything else."""
    from aiida import orm

    if not isinstance(node, orm.CalcJobNode) or node.is_terminated or "remote_folder" not in node.outputs:
        return None
    kind = node.process_type or ""
    try:
        if kind.endswith("slem.train"):
            text = _remote_text(node, TRAIN_FILE)
            steps = (node.inputs.config.get_dict().get("training") or {}).get("max_steps")
            return None if text is None else train_progress(text, steps)
        if kind.endswith("quantumespresso.pw"):
            control = node.inputs.parameters.get_dict().get("CONTROL", {})
            if control.get("calculation") != "md":
                return None
            text = _remote_text(node, PW_OUTPUT)
            return None if text is None else md_progress(text, control.get("nstep"))
    except OSError:  # the folder went away between the check and the read (the job just ended)
        return None
    return None
