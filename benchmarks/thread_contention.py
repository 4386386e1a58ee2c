"""Training step time of a fast-protocol-sized model, quiet and beside CPU-bound competitors (issue 17).

Usage: python benchmarks/thread_contention.py [--variants before,after,one] [--competitors 0,1] [--steps 30]
                                      [--warmup 5] [--repeats 1] [--json FILE]

Model: the `fast` protocol's model and training sections (workflows/protocols/train.yaml, read here
without AiiDA), operators H, S, D, on the tests' Si8 frames (tests/data/si8_frames.h5: 8 atoms, SZ basis
1s1p, 696 blocks), batch_atoms 8, i.e. one frame per step. A step is what ``Trainer`` does per step:
zero_grad, forward, loss, backward, Adam step.

Variants, each in a fresh subprocess whose environment has no OMP_*/MKL_*/OPENBLAS_*/GOMP_* variables:

  before  torch's defaults, as ``slem train`` without --threads ran before slem/threads.py: one thread per
          core of the machine (hardware_concurrency), libgomp's default spin-then-sleep wait
  after   ``slem.threads.configure_threads()`` before torch is imported, as ``slem train`` now does:
          the CPUs of the affinity mask, OMP_WAIT_POLICY=PASSIVE
  active  the same count as ``after`` with OMP_WAIT_POLICY=ACTIVE (threads spin until there is work)
  one     ``configure_threads(1)``: one thread

A competitor is a ``python -c 'while True: pass'`` process at normal priority, started before the worker
and killed after it. Reported per cell: median wall seconds per step, and CPU seconds per step (this
process's user + system time over all its threads); the ratio is the median step time beside the
competitors over the quiet one of the same variant, and over the quiet ``after`` time. Needs a quiet
machine: the load average is printed before every measurement; results are in docs/threading.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fast_protocol import fast_inputs  # same folder

from slem.train.duration import with_duration

ROOT = Path(__file__).resolve().parents[1]
SI8 = ROOT / "tests" / "data" / "si8_frames.h5"
VARIANTS = ("before", "after", "active", "one")
CLEARED_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "GOMP_", "KMP_")


def fast_config(output_dir: str) -> dict:
    """The fast protocol's training config on the Si8 test frames, with S learned: the frames file comes
    without the basis file that ``overlap: basis`` tabulates S from (as in benchmarks/committee.py)."""
    config = fast_inputs("train")["config"]
    config["model"] = {k: v for k, v in config["model"].items() if k != "overlap"}
    return {**config, "dataset": {"path": str(SI8)}, "output_dir": output_dir}


def measure(variant: str, steps: int, warmup: int) -> dict:
    """Runs in the worker subprocess: set threads as the variant says, then time training steps."""
    if variant in ("after", "active"):
        if variant == "active":
            os.environ["OMP_WAIT_POLICY"] = "ACTIVE"  # a policy already set is kept by configure_threads
        from slem.threads import configure_threads

        configure_threads(None)
    elif variant == "one":
        from slem.threads import configure_threads

        configure_threads(1)
    import torch

    from slem.allocator import keep_freed_memory
    from slem.train.config import validate_config
    from slem.train.trainer import Trainer

    keep_freed_memory()  # as the slem command does
    with tempfile.TemporaryDirectory() as tmp:
        config = fast_config(str(Path(tmp) / "run"))
        config["training"] = with_duration(config["training"], {"max_steps": steps + warmup})
        trainer = Trainer(validate_config(config), progress=False)
        trainer.setup()
        trainer.model.train()
        walls, cpus = [], []
        for k in range(warmup + steps):
            t0, c0 = time.perf_counter(), time.process_time()
            trainer._train_step()
            if k >= warmup:
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        n_edges = int(trainer.graphs.get("train", 0)["edge_index"].shape[1])
        trainer.logger.close()
    return {
        "variant": variant,
        "threads": torch.get_num_threads(),
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(libgomp default)"),
        "n_params": trainer.n_params,
        "edges": n_edges,
        "wall_median": statistics.median(walls),
        "wall_mean": statistics.fmean(walls),
        "wall_max": max(walls),
        "cpu_per_step": statistics.fmean(cpus),
        "steps": steps,
    }


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_ENV_PREFIXES)}


def run_one(variant: str, competitors: int, steps: int, warmup: int) -> dict:
    load = os.getloadavg()
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], env=_clean_env())
        for _ in range(competitors)
    ]
    try:
        time.sleep(0.5 if busy else 0.0)
        cmd = [sys.executable, __file__, "--worker", variant, "--steps", str(steps), "--warmup", str(warmup)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env())
    finally:
        for p in busy:
            p.kill()
            p.wait()
    if proc.returncode != 0:
        sys.exit(f"{variant} with {competitors} competitor(s) failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**row, "competitors": competitors, "load_before": [round(x, 2) for x in load]}


def table(rows: list[dict], variants: list[str], competitors: list[int]) -> str:
    cell = {(r["variant"], r["competitors"]): r for r in rows}
    quiet_after = cell.get(("after", 0))
    head = ["variant", "threads", "wait policy"]
    for c in competitors:
        head += [f"{c} comp. wall s", f"{c} comp. CPU s"]
    for c in competitors:
        if c:
            head += [f"{c} comp. / quiet"] + ([f"{c} comp. / quiet after"] if quiet_after else [])
    lines = [head]
    for v in variants:
        first = cell[(v, competitors[0])]
        line = [v, str(first["threads"]), first["wait_policy"]]
        for c in competitors:
            line += [f"{cell[(v, c)]['wall_median']:.3f}", f"{cell[(v, c)]['cpu_per_step']:.3f}"]
        for c in competitors:
            if c:
                quiet = cell.get((v, 0))
                line.append(f"{cell[(v, c)]['wall_median'] / quiet['wall_median']:.2f}x" if quiet else "-")
                if quiet_after:
                    line.append(f"{cell[(v, c)]['wall_median'] / quiet_after['wall_median']:.2f}x")
        lines.append(line)
    width = [max(len(line[k]) for line in lines) for k in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, width, strict=True)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="before,after,one", help=f"comma-separated, from {VARIANTS}")
    parser.add_argument("--competitors", default="0,1", help="comma-separated counts of busy-loop processes")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds over all cells; per cell the median round is kept"
    )
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.warmup)))
        return
    variants = [v for v in args.variants.split(",") if v]
    competitors = [int(c) for c in args.competitors.split(",") if c]
    if unknown := sorted(set(variants) - set(VARIANTS)):
        parser.error(f"unknown variant(s) {unknown}; choose from {VARIANTS}")
    if not SI8.is_file():
        sys.exit(f"{SI8} is missing; run tests/data/make_si8_frames.py")
    print(f"cpus: {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))})   load average at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rounds = []
    for r in range(args.repeats):
        rows = []
        # interleaved (every variant quiet, then with competitors) so slow drifts in the machine's load
        # touch every variant alike
        for c in competitors:
            for v in variants:
                row = run_one(v, c, args.steps, args.warmup)
                rows.append({**row, "round": r})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        rounds.append(rows)
    kept = []
    for k in range(len(rounds[0])):
        cells = sorted((rows[k] for rows in rounds), key=lambda row: row["wall_median"])
        kept.append(cells[len(cells) // 2])
    first = kept[0]
    print(f"model: fast protocol, {first['n_params']} parameters, Si8 SZ, {first['edges']} edges, operators "
          f"H S D; {args.steps} timed steps after {args.warmup}; medians; {args.repeats} round(s)")
    print(table(kept, variants, competitors))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps([row for rows in rounds for row in rows], indent=1))


if __name__ == "__main__":
    main()
