"""Exit codes and the ``status.json`` record of a training run (read by the AiiDA parser)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..atomic import atomic_open

EXIT_FINISHED = 0
EXIT_CONFIG_ERROR = 2
EXIT_WALLTIME = 120
EXIT_NAN = 121
EXIT_OOM = 122

EXIT_CODES = {
    "finished": EXIT_FINISHED,
    "config_error": EXIT_CONFIG_ERROR,
    "walltime": EXIT_WALLTIME,
    "nan": EXIT_NAN,
    "oom": EXIT_OOM,
}


class NanLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class WalltimeStop(Exception):  # noqa: N818 - a control-flow signal, not an error
    """SIGTERM/SIGUSR1 arrived; latest.pt has been written."""


def write_status(output_dir: str | Path, state: str, **details: object) -> Path:
    if state not in EXIT_CODES:
        raise ValueError(f"unknown state {state!r}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"state": state, "exit_code": EXIT_CODES[state], "time": time.time(), **details}
    with atomic_open(out / "status.json") as handle:
        json.dump(record, handle, indent=2, default=str)
    return out / "status.json"
