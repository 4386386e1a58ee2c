"""Training step with the eigenvalue loss: reference bands solved once per frame against every step.

Usage: python benchmarks/eigen_loss_step.py [--frames FILE.h5] [--steps 30] [--warmup 3]
                                            [--training '{"eigenvalue_fermi_bands": 6}']

Model: the `fast` protocol's model and training sections (workflows/protocols/train.yaml, read without
AiiDA), operators H, S, D, S learned, one frame per step, plus ``eigenvalue_loss`` 0.1 at the default 4
k-points with ``eigenvalue_overlap_tolerance`` 0.01 (the setting of docs/transfer.md's runs); ``--training``
adds to or overrides that section. Frames: tests/data/si8_frames.h5 (Si8, 1s1p, 32 bands) unless
``--frames`` names another slem frames file (a pipeline's dataset, e.g. DZP with semicore d).

Two trainers from the same config and seed, stepped in turns so that load changes hit both alike:
``cached`` is ``Trainer`` (each training frame's reference bands solved once, then reused), ``every step``
drops that cache before each step, which is what the loss did before. Reported: median wall and mean CPU
seconds per step (this process, all threads), the ratio every step / cached, and the largest difference
between the two runs' losses, which must be round-off: the cache changes the work, not the result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from fast_protocol import fast_inputs  # same folder

from slem.train.duration import with_duration
from slem.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SI8 = ROOT / "tests" / "data" / "si8_frames.h5"
EIGEN = {"eigenvalue_loss": 0.1, "eigenvalue_overlap_tolerance": 0.01}


class EveryStep(Trainer):
    """The loss as it was: every training step solves its frames' reference bands again."""

    def _train_step(self) -> dict:
        self._reference_bands.clear()
        return super()._train_step()


def config(frames: Path, out: str, steps: int, training: dict) -> dict:
    base = fast_inputs("train")["config"]
    model = {k: v for k, v in base["model"].items() if k != "overlap"}  # no basis file: S is learned
    section = with_duration({**base["training"], **EIGEN, **training, "batch_size": 1, "batch_atoms": None},
                            {"max_steps": steps})
    section["validate_every"] = section["checkpoint_every"] = 10**6  # time the steps alone
    return {**base, "model": model, "training": section, "dataset": {"path": str(frames)},
            "operators": ["H", "S", "D"], "output_dir": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=SI8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--training", type=json.loads, default={}, help="extra training keys, JSON")
    args = parser.parse_args()
    if not isinstance(args.training, dict):
        parser.error("--training must be a JSON object, e.g. '{\"eigenvalue_fermi_bands\": 6}'")
    from slem.train.config import validate_config

    load = os.getloadavg()
    steps = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, cls in (("cached", Trainer), ("every step", EveryStep)):
            cfg = validate_config(config(args.frames, f"{tmp}/{name}", steps, args.training))
            trainer = cls(cfg, progress=False)
            trainer.setup()
            trainer.model.train()
            runs[name] = {"trainer": trainer, "wall": [], "cpu": [], "loss": []}
        for k in range(steps):
            for run in runs.values():
                t0, c0 = time.perf_counter(), time.process_time()
                values = run["trainer"]._train_step()
                run["trainer"].step += 1
                run["loss"].append(values["loss"])
                if k >= args.warmup:
                    run["wall"].append(time.perf_counter() - t0)
                    run["cpu"].append(time.process_time() - c0)
        for run in runs.values():
            run["trainer"].logger.close()
    first = runs["cached"]["trainer"]
    graph = first.graphs.get("train", 0)
    print(f"frames {args.frames.name}: {len(first.data.train)} training frames, {int(graph['norb'].sum())} "
          f"orbitals in frame 0, {first.n_params} parameters")
    print(f"training {json.dumps({**EIGEN, **args.training})}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}; {args.steps} timed steps each")
    print(f"{'variant':<12} {'wall s/step':>12} {'CPU s/step':>11}")
    for name, run in runs.items():
        print(f"{name:<12} {statistics.median(run['wall']):>12.4f} {statistics.fmean(run['cpu']):>11.4f}")
    cached, every = runs["cached"], runs["every step"]
    wall = statistics.median(every["wall"]) / statistics.median(cached["wall"])
    cpu = statistics.fmean(every["cpu"]) / statistics.fmean(cached["cpu"])
    print(f"every step / cached: wall {wall:.2f}x, CPU {cpu:.2f}x")
    drift = max(abs(a - b) for a, b in zip(cached["loss"], every["loss"], strict=True))
    print(f"largest loss difference between the two runs: {drift:.2e}")


if __name__ == "__main__":
    main()
