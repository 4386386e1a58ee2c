"""Peak memory of the training process, recorded in summary.json so that a user can size the
scheduler request of the next run (and a test can place a memory limit between two batch sizes)."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident set, peak address space (what ``ulimit -v`` limits) and, on CUDA, the peak
    of torch's allocator, in MiB."""
    peaks: dict[str, float] = {}
    status = Path("/proc/self/status")
    if status.is_file():
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        for key, name in (("VmHWM", "rss"), ("VmPeak", "address_space")):
            if key in fields:
                peaks[name] = round(int(fields[key].split()[0]) / 1024, 1)
    else:  # no procfs (macOS): only the peak resident set is known, in bytes there
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peaks["rss"] = round(maxrss / (2**20 if sys.platform == "darwin" else 1024), 1)
    if device.type == "cuda":
        peaks["cuda"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peaks
