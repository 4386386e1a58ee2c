"""HDF5 writing: HDF5's own POSIX driver (the route before the full-disk fix) against slem.atomic.atomic_h5.

Two workloads from the test data (tests/data/si8_frames.h5):
- a frames file of N Si8 frames, the streaming writer (``write_frames``: the DiskFullSink route);
- a DeePTB export of M frames, thousands of small block datasets per file (``in_memory=True`` route).

Each is timed in CPU seconds of this process (the machine is shared), best of --repeats, and printed with the
ratio to HDF5's own driver. Usage: ``python benchmarks/h5_writes.py [--frames 200] [--export-frames 40]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py

import slem.data.deeptb as deeptb
import slem.data.frame as frame_module
from slem.atomic import atomic_path
from slem.data.frame import read_frames, write_frames

SI8 = Path(__file__).resolve().parents[1] / "tests" / "data" / "si8_frames.h5"


@contextlib.contextmanager
def posix_driver(path, in_memory: bool = False):
    """The writer as it was (the baseline): temporary file, fsync and rename, HDF5's own POSIX driver."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        yield handle


def cpu_seconds(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--export-frames", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = read_frames(SI8)
    frames = (base * (args.frames // len(base) + 1))[: args.frames]
    exported = frames[: args.export_frames]
    work = Path(tempfile.mkdtemp(prefix="h5_writes."))
    rows = []
    try:
        def frames_file():
            write_frames(work / "frames.h5", frames)

        def export():
            shutil.rmtree(work / "dptb", ignore_errors=True)
            deeptb.write_deeptb(exported, work / "dptb")

        for name, fn in ((f"write_frames, {args.frames} Si8 frames", frames_file),
                         (f"DeePTB export, {args.export_frames} Si8 frames", export)):
            ours = cpu_seconds(fn, args.repeats)
            saved = frame_module.atomic_h5, deeptb.atomic_h5
            frame_module.atomic_h5 = deeptb.atomic_h5 = posix_driver
            try:
                theirs = cpu_seconds(fn, args.repeats)
            finally:
                frame_module.atomic_h5, deeptb.atomic_h5 = saved
            rows.append((name, ours, theirs))
        size = (work / "frames.h5").stat().st_size / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; CPU seconds, best of {args.repeats}; frames file {size:.1f} MB")
    print(f"{'workload':36s} {'atomic_h5':>10s} {'POSIX driver':>13s} {'ratio':>7s}")
    for name, ours, theirs in rows:
        print(f"{name:36s} {ours:10.2f} {theirs:13.2f} {ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
