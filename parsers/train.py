"""Parser of ``slem.train``: the model file becomes a ``SlemModelData``; status.json decides the exit code.

Only small files (JSON, the metrics log, the PNG) are read; the model file is wrapped as a node
without being loaded, so the daemon never imports torch.
"""

from __future__ import annotations

import json
import math
import pathlib
import re

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.gpu import WATCHDOG_MARKER
from aiida_slem.calcjobs.train import MODEL_FILE, STDERR

from aiida_slem.data.model import SlemModelData

from .common import last_lines

OOM_PATTERNS = re.compile(r"out of memory|MemoryError|std::bad_alloc|can't allocate memory|oom-kill", re.I)
SCHEDULER_OUT_OF_MEMORY = 110
SCHEDULER_OUT_OF_WALLTIME = 120


def learning_curves(lines: list[str]) -> orm.ArrayData | None:
    """Arrays ``<kind>_step`` and ``<kind>_<value>`` per record kind (train, validation) of metrics.jsonl."""
    records: dict[str, list[dict]] = {}
    for line in lines:
        line = line.strip()
        if line:
            record = json.loads(line)
            records.setdefault(str(record.get("kind", "train")), []).append(record)
    if not records:
        return None
    curves = orm.ArrayData()
    for kind, rows in sorted(records.items()):
        keys = sorted(
            {
                k
                for row in rows
                for k, v in row.items()
                if k not in ("kind", "step", "time")
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
            }
        )
        prefix = re.sub(r"\W", "_", kind)
        curves.set_array(f"{prefix}_step", np.array([int(row.get("step", 0)) for row in rows]))
        for key in keys:
            values = [row.get(key) for row in rows]
            curves.set_array(
                f"{prefix}_{re.sub(r'[^0-9A-Za-z_]', '_', key)}",
                np.array([math.nan if v is None else float(v) for v in values]),
            )
    return curves


def _finite(value):
    """JSON null for NaN/inf, which AiiDA attributes cannot hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class SlemTrainParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        files = set(self.retrieved.base.repository.list_object_names())
        status = self._json("status.json", files)
        self._attach_curves(files)
        if status is None:
            return self._without_status(files)

        state = status.get("state")
        message = str(status.get("message", ""))
        report = {"state": state, "step": status.get("step"), "message": message}
        if state != "finished":
            self.out("metrics", orm.Dict(_finite(report)))
        if state == "walltime":
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(step=status.get("step"))
        if state == "oom":
            return self.exit_codes.ERROR_OUT_OF_MEMORY.format(message=message)
        if state == "nan":
            return self.exit_codes.ERROR_NAN_LOSS.format(message=message)
        if state == "config_error":
            return self.exit_codes.ERROR_CONFIG.format(message=message)
        if state != "finished":
            return self.exit_codes.ERROR_NO_STATUS.format(message=f"unknown state {state!r} in status.json")
        return self._finished(files, kwargs.get("retrieved_temporary_folder"))

    def _finished(self, files: set[str], temporary: str | None) -> ExitCode | None:
        summary = self._json("summary.json", files)
        if summary is None:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message="summary.json")
        if temporary is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_TEMPORARY_FOLDER
        model_path = pathlib.Path(temporary) / MODEL_FILE
        if not model_path.is_file():
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message=MODEL_FILE)
        run_config = self._json("config.json", files) or {}
        config = {
            "species": summary["species"],
            "basis": summary["basis"],
            "r_cut": summary["r_cut"],
            "n_params": summary["n_params"],
            "operators": summary.get("operators", run_config.get("operators")),
            "steps": summary.get("steps"),
            "model": run_config.get("model", {}),
            "training": run_config.get("training", {}),
            "training_data_sha256": summary.get("training_data_sha256", {}),
        }
        try:
            model = SlemModelData(
                file=model_path,
                filename=MODEL_FILE,
                config=_finite(config),
                metrics=_finite(summary.get("best_validation") or {}),
            )
        except ValueError as exc:
            return self.exit_codes.ERROR_INVALID_MODEL.format(message=str(exc))
        expected = summary.get("model_sha256")
        if expected and expected != model.sha256:
            return self.exit_codes.ERROR_INVALID_MODEL.format(
                message=f"sha256 {model.sha256} is not {expected} written by slem train (truncated copy?)"
            )
        if summary.get("test"):
            model.base.attributes.set("test_metrics", _finite(summary["test"]))
        self.out("model", model)
        self.out("metrics", orm.Dict(_finite({"state": "finished", **summary})))
        return None

    def _without_status(self, files: set[str]) -> ExitCode:
        """No status.json: stopped during start-up, killed by the scheduler or the OS, or crashed."""
        stderr = self._text(STDERR, files)
        tail = last_lines(stderr)
        if WATCHDOG_MARKER in files:
            self.out(
                "metrics",
                orm.Dict(
                    {
                        "state": "walltime",
                        "step": None,
                        "message": "stopped at the walltime before the first step",
                    }
                ),
            )
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(step=None)
        scheduler_status = self.node.exit_status
        if scheduler_status == SCHEDULER_OUT_OF_WALLTIME:
            return self.exit_codes.ERROR_OUT_OF_WALLTIME.format(step=None)
        if scheduler_status == SCHEDULER_OUT_OF_MEMORY or OOM_PATTERNS.search(stderr):
            # the line that names the failure, not the traceback's last lines
            named = [line.strip() for line in stderr.splitlines() if OOM_PATTERNS.search(line)]
            return self.exit_codes.ERROR_OUT_OF_MEMORY.format(message=named[-1] if named else tail)
        return self.exit_codes.ERROR_NO_STATUS.format(message=tail)

    def _attach_curves(self, files: set[str]) -> None:
        if "metrics.jsonl" in files:
            try:
                curves = learning_curves(self._text("metrics.jsonl", files).splitlines())
            except (ValueError, TypeError) as exc:
                self.logger.warning(f"metrics.jsonl is damaged ({exc}); no learning curves")
                curves = None
            if curves is not None:
                self.out("learning_curves", curves)
        if "learning_curve.png" in files:
            with self.retrieved.base.repository.open("learning_curve.png", "rb") as handle:
                self.out("learning_curve_plot", orm.SinglefileData(handle, filename="learning_curve.png"))

    def _json(self, name: str, files: set[str]) -> dict | None:
        if name not in files:
            return None
        try:
            return json.loads(self._text(name, files))
        except ValueError:
            self.logger.warning(f"{name} is not valid JSON")
            return None

    def _text(self, name: str, files: set[str]) -> str:
        if name not in files:
            return ""
        return self.retrieved.base.repository.get_object_content(name, mode="r")
