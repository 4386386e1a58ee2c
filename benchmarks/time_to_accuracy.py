"""Time to accuracy: our SLEM against DeePTB 2.2.1's on DeePTB's Si64 frame, trained to H MAE <= 1 meV and
on to a fixed wall-clock budget.

Usage: python benchmarks/time_to_accuracy.py [--budget 900] [--eval-every 10] [--threads 2]
                                             [--sides ours,deeptb] [--plot docs/images/time_to_accuracy.png]

Both sides train the model of ``benchmarks/slem_vs_deeptb.py`` (DeePTB's Si e3 example: 3 layers,
32x0e+32x1o+16x2e, r_max 7.4 A, H and S) with the optimiser of DeePTB's ``examples/e3/input_short_cpu.json``:
Adam, lr 5e-3, ReduceLROnPlateau on the training loss (factor 0.8, patience 50, min_lr 1e-6), one frame per
step. Each side keeps its own loss (ours: ``slem train``'s; DeePTB: ``hamil_abs``). Every ``--eval-every``
steps the H MAE over all blocks is measured in eval mode; that evaluation is not counted in the training
clock. The sides run one after the other, each in its own subprocess, so neither competes with the other:
compare them only within one run of this script, and read the load averages it prints.

Printed: wall (and CPU) seconds to reach 5, 2 and 1 meV on each side with their ratio, the H MAE of each
side at the same wall time (the shorter side's end), the best MAE within the budget, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slem_vs_deeptb as pair  # noqa: E402  (same folder; stdlib-only at import, so both venvs load it)

TARGETS_MEV = (5.0, 2.0, 1.0)
PLATEAU = {"factor": 0.8, "patience": 50, "min_lr": 1e-6}  # DeePTB input_short_cpu.json "rop"


def train_curve(side: str, root: Path, budget_s: float, eval_every: int) -> dict:
    """Train until ``budget_s`` seconds of training wall time; the H MAE every ``eval_every`` steps."""
    import torch

    if side == "ours":
        from slem.allocator import keep_freed_memory

        keep_freed_memory()  # as the slem command does
        model, _, opt, step, h_mae_mev = pair.our_trainer(root)
    else:
        model, _, opt, step, h_mae_mev = pair.deeptb_trainer(root)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    curve = [{"step": 0, "wall_s": 0.0, "cpu_s": 0.0, "h_mae_mev": h_mae_mev(), "lr": pair.LR}]
    wall = cpu = 0.0
    n = 0
    while wall < budget_s:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(eval_every):
            scheduler.step(step())
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n += eval_every
        curve.append({"step": n, "wall_s": wall, "cpu_s": cpu, "h_mae_mev": h_mae_mev(),
                      "lr": opt.param_groups[0]["lr"]})
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"side": side, "params": params, "curve": curve, "load_end": os.getloadavg()[0]}


def first_below(curve: list[dict], target: float) -> dict | None:
    return next((point for point in curve if point["h_mae_mev"] <= target), None)


def mae_at(curve: list[dict], wall_s: float) -> float:
    """H MAE of the last evaluation at or before ``wall_s`` of training."""
    return [p for p in curve if p["wall_s"] <= wall_s + 1e-9][-1]["h_mae_mev"]


def report(results: dict) -> str:
    names = list(results)
    rows = [("", *names, "/".join(names) if len(names) == 2 else "")]
    for target in TARGETS_MEV:
        hits = [first_below(results[n]["curve"], target) for n in names]
        cells = [f"{h['wall_s']:.0f} s ({h['step']} steps, CPU {h['cpu_s']:.0f} s)" if h else "not reached"
                 for h in hits]
        ratio = f"{hits[0]['wall_s'] / hits[1]['wall_s']:.2f}" if len(hits) == 2 and all(hits) else "-"
        rows.append((f"wall to H MAE <= {target:g} meV", *cells, ratio))
    end = min(results[n]["curve"][-1]["wall_s"] for n in names)
    at_end = [mae_at(results[n]["curve"], end) for n in names]
    rows.append((f"H MAE at {end:.0f} s (meV)", *(f"{m:.3f}" for m in at_end),
                 f"{at_end[0] / at_end[1]:.2f}" if len(at_end) == 2 else ""))
    best = [min(p["h_mae_mev"] for p in results[n]["curve"]) for n in names]
    rows.append(("best H MAE in the budget (meV)", *(f"{b:.3f}" for b in best),
                 f"{best[0] / best[1]:.2f}" if len(best) == 2 else ""))
    rows.append(("steps in the budget", *(str(results[n]["curve"][-1]["step"]) for n in names), ""))
    last = [results[n]["curve"][-1] for n in names]
    rows.append(("s per step (wall)", *(f"{p['wall_s'] / p['step']:.3f}" for p in last), ""))
    rows.append(("load average at the end", *(f"{results[n]['load_end']:.1f}" for n in names), ""))
    return pair.text_table(rows)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        curve = res["curve"][1:]
        ax.plot([p["wall_s"] for p in curve], [p["h_mae_mev"] for p in curve], label=name)
    for target in TARGETS_MEV:
        ax.axhline(target, color="grey", lw=0.5, ls=":")
    ax.set(xlabel="training wall time (s, 2 threads)", ylabel="H MAE (meV)", yscale="log",
           title="Si64 (DeePTB's frame): H MAE against training time")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=900.0, help="training wall seconds per side")
    parser.add_argument("--eval-every", type=int, default=10, help="steps between two H MAE evaluations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sides", default="ours,deeptb", help="ours, deeptb or both")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of both learning curves")
    parser.add_argument("--save", type=Path, default=Path("time_to_accuracy_runs"),
                        help="each side's curve is written here (<side>.json) as soon as it ends")
    parser.add_argument("--reuse", action="store_true",
                        help="take a side's curve from --save instead of training it again")
    parser.add_argument("--worker", choices=["ours", "deeptb"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.budget <= 0 or args.eval_every < 1:
        parser.error("--budget must be positive and --eval-every at least 1")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(train_curve(args.worker, args.data, args.budget, args.eval_every)))
        return
    sides = [s for s in args.sides.split(",") if s]
    if not sides or set(sides) - {"ours", "deeptb"}:
        parser.error(f"--sides takes ours and/or deeptb, got {args.sides!r}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = pair.unpack(Path(tmp))
        args.save.mkdir(parents=True, exist_ok=True)
        for side in sides:
            name = "DeePTB 2.2.1" if side == "deeptb" else "ours"
            saved = args.save / f"{side}.json"
            if args.reuse and saved.is_file():
                results[name] = json.loads(saved.read_text())
                print(f"[{side}] curve from {saved}", file=sys.stderr, flush=True)
                continue
            python = sys.executable if side == "ours" else str(pair.build_venv(sys.stderr))
            print(f"[{side}] training for {args.budget:.0f} s ...", file=sys.stderr, flush=True)
            cmd = [python, str(Path(__file__).resolve()), "--worker", side, "--data", str(data),
                   "--budget", str(args.budget), "--eval-every", str(args.eval_every),
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
            results[name] = json.loads(proc.stdout.splitlines()[-1])
            saved.write_text(json.dumps(results[name]))
    print(f"threads {args.threads}, budget {args.budget:.0f} s per side, H MAE every {args.eval_every} steps")
    print(report(results))
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
