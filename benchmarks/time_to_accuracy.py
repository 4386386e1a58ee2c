"""Time to accuracy: our SLEM against DeePTB 2.2.1's, trained to H MAE <= 1 meV and on to a fixed wall-clock
budget, on DeePTB's Si64 frame (``--dataset si64``, the default) or on the project's own Si8 DZP frames
(``--dataset si8-dzp``).

Usage: python benchmarks/time_to_accuracy.py [--budget 900] [--eval-every 10] [--threads 2]
                                             [--sides ours,deeptb] [--plot docs/images/time_to_accuracy.png]
       python benchmarks/time_to_accuracy.py --dataset si8-dzp --frames DIR [--sides ours,ours-hsd,deeptb] ...

Both sides train the model of ``benchmarks/slem_vs_deeptb.py`` (DeePTB's Si e3 example: 3 layers,
32x0e+32x1o+16x2e, r_max 7.4 A, H and S) with the optimiser of DeePTB's ``examples/e3/input_short_cpu.json``:
Adam, lr 5e-3, ReduceLROnPlateau on the training loss (factor 0.8, patience 50, min_lr 1e-6), one frame per
step. Each side keeps its own loss (ours: ``slem train``'s; DeePTB: ``hamil_abs``). Every ``--eval-every``
steps the H MAE over all blocks is measured in eval mode; that evaluation is not counted in the training
clock. The sides run one after the other, each in its own subprocess, so neither competes with the other:
compare them only within one run of this script, and read the load averages it prints.

si64: the 1s1p frame trained on is the frame measured (DeePTB's example), the speed of fitting. DeePTB's H MAE
is over its node and edge features (upper-triangle orbital pairs), ours over the full blocks.

si8-dzp (``benchmarks/si8_dzp_pair.py`` has the details): DIR holds ``train.h5`` and ``test.h5``, real pw.x
Si8 frames of ``benchmarks/efficiency_frames.py`` (basis 2s2p1d, disjoint seeds). Both sides cycle over the
training frames in file order, one per step, on H and S; the model adds l = 3, 4 hidden channels (d-d blocks)
and both cutoffs are the one ``slem train`` infers from the frames. The thresholds apply to the H MAE of the
held-out test frames; the training frames' H MAE is reported too. On both sides it is over every element of
every onsite and directed hopping block (DeePTB's features are turned back into its blocks). ``ours-hsd`` is
our model with a D head as well (H + S + D): DeePTB learns D only in a separate model, so it has no such run.

Printed: wall (and CPU) seconds to reach 5, 2 and 1 meV on each side with their ratio to DeePTB's, the H MAE
of each side at the same wall time (the shortest side's end), the best MAE within the budget, and one JSON
line.
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
import si8_dzp_pair as si8  # noqa: E402  (same folder; both stdlib-only at import, so both venvs load them)
import slem_vs_deeptb as pair  # noqa: E402

TARGETS_MEV = (5.0, 2.0, 1.0)
PLATEAU = {"factor": 0.8, "patience": 50, "min_lr": 1e-6}  # DeePTB input_short_cpu.json "rop"
NAMES = {"ours": "ours", "ours-hsd": "ours H+S+D", "deeptb": "DeePTB 2.2.1"}
DEFAULT_SIDES = {"si64": "ours,deeptb", "si8-dzp": "ours,ours-hsd,deeptb"}


def train_curve(side: str, root: Path, budget_s: float, eval_every: int, dataset: str = "si64") -> dict:
    """Train until ``budget_s`` seconds of training wall time; the H MAE every ``eval_every`` steps."""
    import torch

    if side != "deeptb":
        from slem.allocator import keep_freed_memory

        keep_freed_memory()  # as the slem command does
    if dataset == "si8-dzp":
        model, _, opt, step, evaluate = (
            si8.deeptb_trainer(root, pair.deeptb_options(), pair.LR)
            if side == "deeptb"
            else si8.our_trainer(root, side, pair.LR, pair.widths(pair.WIDTHS))
        )
    else:
        model, _, opt, step, h_mae_mev = (pair.deeptb_trainer if side == "deeptb" else pair.our_trainer)(root)
        evaluate = lambda: {"h_mae_mev": h_mae_mev()}  # noqa: E731
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    curve = [{"step": 0, "wall_s": 0.0, "cpu_s": 0.0, **evaluate(), "lr": pair.LR}]
    wall = cpu = 0.0
    n = 0
    while wall < budget_s:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(eval_every):
            scheduler.step(step())
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        n += eval_every
        curve.append({"step": n, "wall_s": wall, "cpu_s": cpu, **evaluate(), "lr": opt.param_groups[0]["lr"]})
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"side": side, "params": params, "curve": curve, "load_end": os.getloadavg()[0]}


def first_below(curve: list[dict], target: float) -> dict | None:
    return next((point for point in curve if point["h_mae_mev"] <= target), None)


def mae_at(curve: list[dict], wall_s: float, key: str = "h_mae_mev") -> float:
    """H MAE (or ``key``) of the last evaluation at or before ``wall_s`` of training."""
    return [p for p in curve if p["wall_s"] <= wall_s + 1e-9][-1][key]


def report(results: dict, held_out: bool = False) -> str:
    """The table; with two or more sides each is compared with the last one (DeePTB when it runs)."""
    names = list(results)
    refs = [(n, names[-1]) for n in names[:-1]]
    blank = [""] * max(1, len(refs))

    def ratios(values: dict) -> list[str]:
        return [f"{values[a] / values[b]:.2f}" if values[a] and values[b] else "-" for a, b in refs] or blank

    rows = [("", *names, *(["/".join(r) for r in refs] or blank))]
    for target in TARGETS_MEV:
        hits = {n: first_below(results[n]["curve"], target) for n in names}
        cells = [
            f"{h['wall_s']:.0f} s ({h['step']} steps, CPU {h['cpu_s']:.0f} s)" if h else "not reached"
            for h in hits.values()
        ]
        label = f"wall to {'test ' if held_out else ''}H MAE <= {target:g} meV"
        walls = {n: h and h["wall_s"] for n, h in hits.items()}
        rows.append((label, *cells, *(ratios(walls) if refs else ["-"])))
    end = min(results[n]["curve"][-1]["wall_s"] for n in names)
    keys = [("h_mae_mev", "H MAE")]
    if held_out:
        keys = [("h_mae_mev", "test H MAE"), ("train_h_mae_mev", "training frames' H MAE")]
    for key, label in keys:
        at_end = {n: mae_at(results[n]["curve"], end, key) for n in names}
        cells = [f"{m:.3f}" for m in at_end.values()]
        rows.append((f"{label} at {end:.0f} s (meV)", *cells, *ratios(at_end)))
    best = {n: min(p["h_mae_mev"] for p in results[n]["curve"]) for n in names}
    cells = [f"{b:.3f}" for b in best.values()]
    rows.append((f"best {keys[0][1]} in the budget (meV)", *cells, *ratios(best)))
    if held_out:
        d = [
            f"{1e3 * mae_at(results[n]['curve'], end, 'd_mae'):.3f}"
            if "d_mae" in results[n]["curve"][-1]
            else "no D head"
            for n in names
        ]
        rows.append((f"test D MAE at {end:.0f} s (1e-3)", *d, *blank))
        rows.append(
            (
                "H elements per test evaluation",
                *(str(results[n]["curve"][-1]["h_elements"]) for n in names),
                *blank,
            )
        )
    rows.append(("steps in the budget", *(str(results[n]["curve"][-1]["step"]) for n in names), *blank))
    last = [results[n]["curve"][-1] for n in names]
    rows.append(("s per step (wall)", *(f"{p['wall_s'] / p['step']:.3f}" for p in last), *blank))
    rows.append(("load average at the end", *(f"{results[n]['load_end']:.1f}" for n in names), *blank))
    return pair.text_table(rows)


def plot(results: dict, path: Path, title: str, threads: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        curve = res["curve"][1:]
        wall = [p["wall_s"] for p in curve]
        line = ax.plot(wall, [p["h_mae_mev"] for p in curve], label=name)[0]
        if "train_h_mae_mev" in curve[0]:
            ax.plot(
                wall,
                [p["train_h_mae_mev"] for p in curve],
                color=line.get_color(),
                ls="--",
                lw=0.8,
                label=f"{name}, training frames",
            )
    for target in TARGETS_MEV:
        ax.axhline(target, color="grey", lw=0.5, ls=":")
    xlabel = f"training wall time (s, {threads} thread{'s' * (threads != 1)})"
    ax.set(xlabel=xlabel, ylabel="H MAE (meV)", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        choices=sorted(DEFAULT_SIDES),
        default="si64",
        help="si64: DeePTB's Si64 frame (shipped); si8-dzp: the frames of --frames",
    )
    parser.add_argument(
        "--frames",
        type=Path,
        help="si8-dzp: folder with train.h5 and test.h5 (benchmarks/efficiency_frames.py)",
    )
    parser.add_argument("--budget", type=float, default=900.0, help="training wall seconds per side")
    parser.add_argument("--eval-every", type=int, default=10, help="steps between two H MAE evaluations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sides",
        help="comma-separated: ours, deeptb and (si8-dzp) ours-hsd; default "
        + "; ".join(f"{k}: {v}" for k, v in DEFAULT_SIDES.items()),
    )
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the learning curves")
    parser.add_argument(
        "--save",
        type=Path,
        default=Path("time_to_accuracy_runs"),
        help="each side's curve is written here (<side>.json, si8-dzp-<side>.json) as soon as it ends",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="take a side's curve from --save instead of training it again"
    )
    parser.add_argument("--worker", choices=sorted(NAMES), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.budget <= 0 or args.eval_every < 1:
        parser.error("--budget must be positive and --eval-every at least 1")
    si64 = args.dataset == "si64"
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(train_curve(args.worker, args.data, args.budget, args.eval_every, args.dataset)))
        return
    allowed = {"ours", "deeptb"} if si64 else set(NAMES)
    sides = [s for s in (args.sides or DEFAULT_SIDES[args.dataset]).split(",") if s]
    if not sides or set(sides) - allowed:
        parser.error(
            f"--sides takes {', '.join(sorted(allowed))} with --dataset {args.dataset}, got {args.sides!r}"
        )
    if not si64 and not (args.frames and all((args.frames / f"{n}.h5").is_file() for n in ("train", "test"))):
        parser.error("--dataset si8-dzp needs --frames DIR holding train.h5 and test.h5")
    sides.sort(key=lambda s: s == "deeptb")  # DeePTB last: the table compares each side with it
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if si64:
            data = pair.unpack(Path(tmp))
        else:
            data = Path(tmp)
            prepared = si8.prepare(args.frames, data)
            print(f"si8-dzp: {json.dumps(prepared)}", file=sys.stderr, flush=True)
        args.save.mkdir(parents=True, exist_ok=True)
        for side in sides:
            name = NAMES[side]
            saved = args.save / (f"{side}.json" if si64 else f"{args.dataset}-{side}.json")
            if args.reuse and saved.is_file():
                results[name] = json.loads(saved.read_text())
                print(f"[{side}] curve from {saved}", file=sys.stderr, flush=True)
                continue
            python = sys.executable if side != "deeptb" else str(pair.build_venv(sys.stderr))
            print(f"[{side}] training for {args.budget:.0f} s ...", file=sys.stderr, flush=True)
            cmd = [
                python,
                str(Path(__file__).resolve()),
                "--worker",
                side,
                "--data",
                str(data),
                "--budget",
                str(args.budget),
                "--eval-every",
                str(args.eval_every),
                "--threads",
                str(args.threads),
                "--dataset",
                args.dataset,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"{side} failed:\n{proc.stderr[-3000:]}")
            results[name] = json.loads(proc.stdout.splitlines()[-1])
            saved.write_text(json.dumps(results[name]))
    print(f"threads {args.threads}, budget {args.budget:.0f} s per side, H MAE every {args.eval_every} steps")
    if not si64:
        print(
            f"Si8 DZP: {args.frames} (train.h5: training frames, test.h5: held-out frames the thresholds "
            "apply to)"
        )
    print(report(results, held_out=not si64))
    if args.plot:
        title = (
            "Si64 (DeePTB's frame): H MAE against training time"
            if si64
            else "Si8 DZP: held-out H MAE against training time"
        )
        plot(results, args.plot, title, args.threads)
        print(f"plot: {args.plot}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
