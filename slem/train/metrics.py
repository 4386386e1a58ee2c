"""Metrics log (JSON lines, optional TensorBoard) and the learning-curve plot."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path


class MetricsLogger:
    """Appends one JSON object per record to ``metrics.jsonl``; mirrors scalars to TensorBoard
    when the ``tensorboard`` package is installed. On resume, records past ``resume_step`` are
    dropped so the log matches the restored state."""

    def __init__(self, output_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._tb = None
        if not enabled:
            return
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self._tb = None

    def log(self, kind: str, step: int, values: dict) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": time.time(), **values}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
        if self._tb is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    records = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill is skipped
                continue
    return records


def plot_learning_curve(metrics_path: str | Path, png_path: str | Path) -> Path | None:
    """Training loss and validation loss against step, log scale (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r["kind"] == "train" and "loss" in r]
    val = [(r["step"], r["loss"]) for r in records if r["kind"] == "validation" and "loss" in r]
    if not train and not val:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for data, label, style in ((train, "train", "-"), (val, "validation", "o-")):
        if data:
            steps, losses = zip(*data, strict=True)
            ax.plot(steps, losses, style, label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss  ½(MAE+RMSE)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return Path(png_path)
