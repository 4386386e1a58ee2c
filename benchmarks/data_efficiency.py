"""Data efficiency: held-out error against the number of DFT frames, for random frames, committee-selected
frames and fine-tuning from a model of another material.

Usage: python benchmarks/data_efficiency.py --frames DIR [--sizes 2,4,8,16] [--seeds 2] [--first-seed 0]
           [--members 3] [--steps protocol|N] [--threads 2]
           [--strategies random,committee,mixed,finetune,refit]
           [--out DIR]
           [--also DIR ...] [--source-model model.pt] [--plot docs/images/data_efficiency.png]
           [--training '{"eigenvalue_loss": 0.1, "eigenvalue_overlap_tolerance": 0.01}']

DIR holds real pw.x frames made by ``benchmarks/efficiency_frames.py`` on one basis: ``pool.h5`` (Si8
candidates, what a strategy may pay DFT for), ``test.h5`` (held-out Si8 frames of the same distribution;
when they hold several structures, e.g. diamond and lonsdaleite, the band error is also reported per
structure and a target counts as reached only when every structure meets it),
``validation.h5`` (the early-stopping frames every run shares) and ``source.h5`` (3C-SiC frames, the other
material). With a rare structure in the pool, ``validation.h5`` holds the common structure only, as a
user's own validation frames would: a rare-structure frame there stops every run whose training lacks that
structure after a few hundred steps (seen: steps 150-200 of 800, diamond bands 360-520 meV off).
Every run is ``slem train`` with the fast protocol's model and optimiser
(``workflows/protocols/train.yaml``: H, S from the basis, D), for the protocol's own duration (100 epochs
within 800 and 2000 steps, so 16 Si8 frames train 1600 steps) or ``--steps N`` steps, then ``slem predict``
and ``slem validate`` on the test frames with the fast protocol's validation settings. Strategies:

* random: the first n frames of a seeded permutation of the pool, one run per seed and size;
* committee: from the same first frames as random seed s, ``--members`` models (member 0 with seed s)
  rank the frames not yet used by their H spread (``slem committee``, as ``ActiveLearningWorkChain``
  does) and the most uncertain ones are added up to the next size; member 0's error is the point, the
  other members are the strategy's cost;
* fermi: as committee, ranked by the members' spread of the bands around the Fermi level instead
  (``slem committee --rank-by fermi_band_sigma_meV``: the 6 highest occupied and 6 lowest empty bands at 4
  k-points), the bands the test scores; its first round is committee's (same frames, same members);
* mixed: as committee, but half of each round's new frames (rounded down) are the next frames of random
  seed s's permutation instead of the most uncertain ones: pure uncertainty sampling fills the training set
  with the distribution's tail and misses the typical frames the test set holds;
* finetune: random seed s's frames, starting from one model trained on all of ``source.h5``;
* refit: the same with ``training.refit_statistics`` (the output statistics fitted anew from the Si frames:
  another material has another energy zero and other bond lengths).

``--strategies ''`` runs nothing and reports the points of ``--out`` and ``--also`` (strategies split over
processes, e.g. one thread each on two cores).
The DFT frames are computed once and charged per use (their pw.x + pp.x + projection seconds, recorded by
the generator), so each point's cost is its frames' DFT time plus its training (and ranking) time. Printed:
per strategy and size the H MAE and the error of the bands within 1 eV of E_F against the LCAO bands (the
fast protocol's metal metric: the frames are smeared), on all test frames, on their distorted half and on the
worst one (mean and spread over seeds); the fewest frames that reach the fast protocol's targets; the
committee's rank correlation per round; one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from fast_protocol import fast_inputs  # same folder

from slem.data.frame import read_frames, write_frames
from slem.train.duration import with_duration

STRATEGIES = ("random", "committee", "fermi", "mixed", "finetune", "refit")
# the strategies whose rounds a committee ranks, and the slem committee spread each ranks by
RANKED = {"committee": "sigma_H_meV", "fermi": "fermi_band_sigma_meV", "mixed": "sigma_H_meV"}


def train_config(data: Path, basis: Path, out: Path, seed: int, steps: int | None, parent: Path | None,
                 refit: bool = False, overrides: dict | None = None) -> dict:
    """The fast protocol's config; ``steps`` None keeps the protocol's duration (epochs within bounds)."""
    config = fast_inputs("train")["config"]
    training = {**config["training"], **(overrides or {})}
    training = {**with_duration(training, {} if steps is None else {"max_steps": steps}), "seed": seed}
    if parent is not None:
        training.update(init_model=str(parent), refit_statistics=refit)
    return {**config, "dataset": {"path": str(data), "basis_path": str(basis)}, "output_dir": str(out),
            "training": training}


def structure_of(label: str) -> str:
    """The material of an ``efficiency_frames.py`` label, e.g. 'Si_hex' of 'Si_hex_seed1003'."""
    return label.rsplit("_seed", 1)[0]


def read_report(path: Path) -> dict:
    """The point's errors from its ``slem validate`` report: H MAE, the bands within 1 eV of E_F against the
    LCAO bands (mean, worst test frame, per frame)."""
    content = json.loads(path.read_text())
    summary, bands = content["summary"], content["bands"]
    frames = {label: entry["vs_lcao"]["all"]["fermi_window_mae_meV"] for label, entry in bands.items()}
    structures = sorted({structure_of(label) for label in frames})
    by_structure = {name: float(np.mean([e for label, e in frames.items() if structure_of(label) == name]))
                    for name in structures}
    return {"H_meV": summary["H_mae_meV"], "bands_meV": summary["fermi_window_mae_vs_lcao_meV"],
            "worst_bands_meV": max(frames.values()), "bands_by_frame_meV": frames,
            "worst_structure_bands_meV": max(by_structure.values()),
            **{f"bands_{name}_meV": error for name, error in by_structure.items()}}


class Runner:
    def __init__(self, frames: Path, out: Path, steps: int | None, threads: int,
                 training: dict | None = None):
        self.training = training or {}
        self.pool = read_frames(frames / "pool.h5")
        self.validation = read_frames(frames / "validation.h5")
        self.test, self.basis, self.out, self.steps = frames / "test.h5", frames / "basis.h5", out, steps
        self.source = frames / "source.h5"
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.threads = str(threads)
        (out / "settings.json").write_text(json.dumps(fast_inputs("validation")["settings"]))

    def run(self, *command: str) -> float:
        start = time.perf_counter()
        subprocess.run(["slem", *command, "--threads", self.threads], check=True, env=self.env,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    def dataset(self, name: str, frames: list) -> Path:
        path = self.out / f"{name}.h5"
        n = len(frames)
        write_frames(path, [*frames, *self.validation],
                     split={"train": list(range(n)), "validation": list(range(n, n + len(self.validation)))})
        return path

    def train(self, name: str, data: Path, seed: int, parent: Path | None = None,
              refit: bool = False) -> tuple[Path, float]:
        run = self.out / name
        model = run / "model.pt"
        timing = run / "seconds.json"
        if model.is_file() and timing.is_file():  # resumable: a finished run is kept
            return model, json.loads(timing.read_text())["train_s"]
        config = self.out / f"{name}.json"
        config.write_text(json.dumps(train_config(data, self.basis, run, seed, self.steps, parent, refit,
                                                  self.training)))
        seconds = self.run("train", str(config), "--no-progress")
        timing.write_text(json.dumps({"train_s": seconds}))
        return model, seconds

    def evaluate(self, name: str, model: Path) -> dict:
        report = self.out / name / "report.json"
        if not report.is_file():
            predictions = self.out / name / "test_predictions.h5"
            self.run("predict", str(model), str(self.test), "-o", str(predictions))
            settings = str(self.out / "settings.json")
            self.run("validate", str(predictions), str(self.test), "--settings", settings, "-o", str(report),
                     "--plots", str(self.out / name / "plots"))
        return read_report(report)

    def point(self, strategy: str, seed: int, frames: list, parent: Path | None = None) -> dict:
        name = f"{strategy}_s{seed}_n{len(frames)}"
        model, train_s = self.train(name, self.dataset(name, frames), seed, parent, strategy == "refit")
        return self.record(strategy, seed, name, model, frames, train_s)

    def record(self, strategy: str, seed: int, name: str, model: Path, frames: list, train_s: float) -> dict:
        return {"strategy": strategy, "seed": seed, "n_frames": len(frames), **self.evaluate(name, model),
                "dft_s": sum(frame.metadata["dft_s"] for frame in frames), "train_s": train_s,
                "model": str(model), "labels": [frame.metadata["label"] for frame in frames]}

    def committee_rank(self, name: str, models: list[Path], candidates: list, rank_by: str) -> list[str]:
        """Candidate labels by falling ``rank_by`` spread of the committee."""
        path = self.out / f"{name}_candidates.h5"
        write_frames(path, candidates)
        report = self.out / f"{name}_committee.json"
        self.run("committee", *map(str, models), "--frames", str(path), "-o", str(report),
                 "--rank-by", rank_by, "--select", str(len(candidates)))
        return json.loads(report.read_text())["most_uncertain"]


def random_points(runner: Runner, order: list[int], seed: int, sizes: list[int]) -> list[dict]:
    return [runner.point("random", seed, [runner.pool[i] for i in order[:n]]) for n in sizes]


def committee_points(runner: Runner, order: list[int], seed: int, sizes: list[int], members: int,
                     strategy: str = "committee") -> list:
    """Start from the random run's first frames; each round's committee picks the next frames (the last
    round's frames need no ranking, so only its member 0 is trained). ``mixed``: half of each round's new
    frames, rounded down, are the next unused frames of the random order instead."""
    chosen = [runner.pool[i] for i in order[: sizes[0]]]
    points = []
    for number, n in enumerate(sizes):
        name = f"{strategy}_s{seed}_n{n}"
        # the first round's frames and members are the same for every ranked strategy: trained once
        trained_as = f"committee_s{seed}_n{n}" if number == 0 else name
        data = runner.dataset(trained_as, chosen)
        last = number + 1 == len(sizes)
        # member 0 has the random run's training seed, so both strategies' first points are one run
        trained = [runner.train(f"{trained_as}_m{k}", data, seed + 1000 * k)
                   for k in range(1 if last else members)]
        models = [model for model, _ in trained]
        cost = sum(seconds for _, seconds in trained)
        point = runner.record(strategy, seed, f"{trained_as}_m0", models[0], chosen, cost)
        points.append(point)
        if number == 0:  # the same frames and training seed as random's first point: one run, not two
            points.append({**point, "strategy": "random", "train_s": trained[0][1]})
        if last:
            break
        used = {f.metadata["label"] for f in chosen}
        candidates = [f for f in runner.pool if f.metadata["label"] not in used]
        start = time.perf_counter()
        ranked = runner.committee_rank(name, list(models), candidates, RANKED[strategy])
        point["rank_s"] = time.perf_counter() - start  # the ranked strategy's cost, not random's
        by_label = {f.metadata["label"]: f for f in candidates}
        new = sizes[number + 1] - n
        at_random = new // 2 if strategy == "mixed" else 0
        picked = ranked[: new - at_random]
        unused = [runner.pool[i].metadata["label"] for i in order]
        picked += [label for label in unused if label in by_label and label not in picked][:at_random]
        chosen = chosen + [by_label[label] for label in picked]
    return points


def finetune_points(runner: Runner, order: list[int], seed: int, sizes: list[int], parent: Path,
                    strategy: str = "finetune") -> list:
    """Random seed ``seed``'s frames from the SiC model; ``refit``: with its output statistics fitted anew
    (training.refit_statistics)."""
    return [runner.point(strategy, seed, [runner.pool[i] for i in order[:n]], parent) for n in sizes]


def structures(points: list[dict]) -> list[str]:
    return sorted({structure_of(label) for p in points for label in p["bands_by_frame_meV"]})


def summarise(points: list[dict], sizes: list[int], targets: dict) -> dict:
    table = {}
    for strategy in STRATEGIES:
        for n in sizes:
            rows = [p for p in points if p["strategy"] == strategy and p["n_frames"] == n]
            if rows:
                keys = ("H_meV", "bands_meV", "distorted_bands_meV", "worst_bands_meV", "dft_s", "train_s",
                        "worst_structure_bands_meV", *(f"bands_{name}_meV" for name in structures(rows)))
                values = {key: [r[key] for r in rows] for key in keys}
                table[(strategy, n)] = {
                    key: (float(np.mean(v)), float(np.std(v)), len(v)) for key, v in values.items()}
    # with several test structures, every one of them must meet the band target
    band_key = "worst_structure_bands_meV" if len(structures(points)) > 1 else "bands_meV"
    limits = {"H_meV": targets["H_meV"], band_key: targets["bands"]}
    first = {}
    for strategy in STRATEGIES:
        reached = [n for n in sizes if (strategy, n) in table
                   and all(table[(strategy, n)][key][0] <= limit for key, limit in limits.items())]
        first[strategy] = min(reached) if reached else None
    return {"table": table, "frames_to_target": first}


def plot(points: list[dict], path: Path, targets: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = structures(points)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5 * (1 + len(names)), 4))
    bands = "bands within 1 eV of E_F, vs LCAO (meV)"
    panels = [(axes[0], "H_meV", "H MAE (meV)", "held-out frames")] + [
        (ax, f"bands_{name}_meV", bands, f"held-out {name} frames")
        for ax, name in zip(axes[1:], names, strict=True)]
    for ax, key, label, title in panels:
        for strategy, marker in zip(STRATEGIES, "os*D^v", strict=True):
            rows = [p for p in points if p["strategy"] == strategy]
            if not rows:
                continue
            sizes = sorted({p["n_frames"] for p in rows})
            values = [[p[key] for p in rows if p["n_frames"] == n] for n in sizes]
            ax.errorbar(sizes, [np.mean(v) for v in values], yerr=[np.std(v) for v in values], marker=marker,
                        capsize=3, label=f"{strategy} ({len({p['seed'] for p in rows})} seeds)")
        limit = targets["H_meV"] if key == "H_meV" else targets["bands"]
        ax.axhline(limit, color="grey", ls="--", lw=1, label="fast protocol target")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({p["n_frames"] for p in points}), labels=None)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_yscale("log")
        ax.set_xlabel("DFT frames (8 atoms) in training")
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def run(args, sizes: list[int]) -> list[dict]:
    """Every point of the requested strategies (finished runs in --out are reused)."""
    strategies = set(filter(None, args.strategies.split(",")))
    runner = Runner(args.frames, args.out, args.steps, args.threads, args.training)
    if sizes[-1] > len(runner.pool):
        raise SystemExit(f"--sizes {sizes[-1]} exceeds the pool's {len(runner.pool)} frames")
    parent = args.source_model
    if strategies & {"finetune", "refit"} and parent is None:
        source = read_frames(runner.source)
        parent, seconds = runner.train("source", runner.dataset("source", source), 0)
        print(f"finetune: the SiC source model trained {seconds:.0f} s on {len(source)} frames (not charged "
              "to the points)", flush=True)
    points = []
    for seed in range(args.first_seed, args.seeds):
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(runner.pool))]
        if "random" in strategies:
            points += random_points(runner, order, seed, sizes)
        for strategy in sorted(strategies & set(RANKED)):
            if seed < (args.committee_seeds or args.seeds):
                points += committee_points(runner, order, seed, sizes, args.members, strategy)
        for strategy in sorted(strategies & {"finetune", "refit"}):
            points += finetune_points(runner, order, seed, sizes, parent, strategy)
        if strategies:  # a report-only call must not overwrite the points of the runs in --out
            (args.out / "points.json").write_text(json.dumps(points, indent=1))
    return points


def report(points: list[dict], sizes: list[int], targets: dict, header: str) -> dict:
    result = summarise(points, sizes, targets)
    print(header + "; load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    columns = ("H MAE (meV)", "bands (meV)", "distorted half", "worst frame")
    print(f"{'strategy':9s} {'frames':>6s} " + " ".join(f"{c:>16s}" for c in columns)
          + f" {'DFT s':>7s} {'train s':>8s} {'seeds':>5s}")
    for (strategy, n), row in result["table"].items():
        errors = ("H_meV", "bands_meV", "distorted_bands_meV", "worst_bands_meV")
        cells = " ".join(f"{row[key][0]:9.2f} ±{row[key][1]:5.2f}" for key in errors)
        print(f"{strategy:9s} {n:6d} {cells} {row['dft_s'][0]:7.0f} {row['train_s'][0]:8.0f} "
              f"{row['H_meV'][2]:5d}")
    names = structures(points)
    if len(names) > 1:
        print("bands within 1 eV of E_F vs LCAO per test structure (meV):")
        print(f"{'strategy':9s} {'frames':>6s} " + " ".join(f"{name:>16s}" for name in names))
        for (strategy, n), row in result["table"].items():
            cells = " ".join(f"{row[f'bands_{name}_meV'][0]:9.2f} ±{row[f'bands_{name}_meV'][1]:5.2f}"
                             for name in names)
            print(f"{strategy:9s} {n:6d} {cells}")
    first = result["frames_to_target"]
    every = " on every test structure" if len(names) > 1 else ""
    print(f"fewest frames whose mean over seeds reaches H <= {targets['H_meV']:g} meV and bands <= "
          f"{targets['bands']:g} meV{every}: {first}")
    for strategy in RANKED:
        if first.get("random") and first.get(strategy):
            print(f"ratio {strategy} / random frames to target: {first[strategy] / first['random']:.2f}")
    return result


# the committee report's rank correlations printed per round (spearman_<key>), in the table's column order
CORRELATIONS = ("sigma_H_vs_error", "fermi_band_sigma_vs_error", "sigma_H_vs_fermi_band_error",
                "fermi_band_sigma_vs_fermi_band_error")


def committee_correlations(folders: list[Path]) -> list[tuple[str, dict]]:
    """Per committee round: Spearman's rank correlations of the candidates' H spread and Fermi band spread
    with the committee mean's true H error and Fermi band error (the pool frames carry their DFT reference,
    which the ranking never sees). Rounds ranked before those keys existed lack some: None."""
    rows = []
    for folder in folders:
        ranked = [p for kind in RANKED for p in folder.glob(f"{kind}_s*_committee.json")]
        for path in sorted(ranked):
            report = json.loads(path.read_text())
            values = {key: report.get(f"spearman_{key}") for key in CORRELATIONS}
            rows.append((path.name.removesuffix("_committee.json"),
                         {**values, "candidates": report["frames_with_reference"]}))
    return rows


def steps_arg(text: str) -> int | None:
    if text == "protocol":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a positive step count or 'protocol', not {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--sizes", default="2,4,8,16")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (another process runs the ones before it)")
    parser.add_argument("--committee-seeds", type=int, help="default: --seeds")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--steps", type=steps_arg, default=None,
                        help="steps per run, or 'protocol' (default): the fast protocol's epochs within "
                        "bounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategies", default="random,committee,finetune,refit", help="'' to only report")
    parser.add_argument("--source-model", type=Path,
                        help="the SiC model of another run (default: trained here)")
    parser.add_argument("--out", type=Path, default=Path("data_efficiency"))
    parser.add_argument("--also", type=Path, nargs="*", default=[],
                        help="--out folders of other runs (e.g. the strategies split over two processes) "
                        "whose points join the table and plot")
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--training", default="{}",
                        help="JSON keys of the config's training section every run gets, e.g. "
                        "'{\"eigenvalue_loss\": 0.1, \"eigenvalue_overlap_tolerance\": 0.01}'")
    args = parser.parse_args()
    try:
        args.training = json.loads(args.training)
    except json.JSONDecodeError as exc:
        parser.error(f"--training is not JSON ({exc}); give an object, e.g. '{{\"eigenvalue_loss\": 0.1}}'")
    if not isinstance(args.training, dict):
        parser.error(f"--training must be a JSON object of training-section keys, got {args.training!r}")
    sizes = sorted(int(n) for n in args.sizes.split(","))
    # slem train reads a config's relative paths from the config's folder, not from here
    args.out, args.frames = args.out.resolve(), args.frames.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    points = run(args, sizes)
    for folder in args.also:
        points += json.loads((folder / "points.json").read_text())
    # every ranked strategy's first round adds the random point it shares: keep one per run
    points = list({(p["strategy"], p["model"]): p for p in points}.values())
    # the distorted half of the test frames (rms displacement above their median): the committee picks the
    # most distorted candidates, so this is where its frames should pay off
    test = read_frames(args.frames / "test.h5")
    rattle = {f.metadata["label"]: f.metadata["rattle_rms"] for f in test}
    distorted = {label for label, rms in rattle.items() if rms > np.median(list(rattle.values()))}
    for point in points:  # the errors as the reports hold them (points.json of an older run may lack some)
        point.update(read_report(Path(point["model"]).parent / "report.json"))
        point["distorted_bands_meV"] = float(np.mean(
            [error for label, error in point["bands_by_frame_meV"].items() if label in distorted]))
    # the test frames are smeared (see efficiency_frames.py), so the fast protocol's metal targets apply
    thresholds = fast_inputs("validation")["settings"]["metal_thresholds"]
    targets = {"H_meV": thresholds["H_mae_meV"], "bands": thresholds["fermi_window_mae_vs_lcao_meV"]}
    duration = "the protocol's 100 epochs (800-2000 steps)" if args.steps is None else f"{args.steps} steps"
    header = (f"8-atom DZP frames, the fast protocol's model, {duration} per run, {args.threads} "
              f"threads, {len(test)} held-out test frames"
              + (f", training overrides {json.dumps(args.training)}" if args.training else ""))
    result = report(points, sizes, targets, header)
    rounds = committee_correlations([args.out, *args.also])
    if rounds:
        print("Spearman's rank correlation of each round's spread with the committee mean's error on the "
              "candidates:")
        print(f"{'round':14s} {'candidates':>10s} {'H spread':>10s} {'Fermi spread':>12s}   (vs H error)"
              f" {'H spread':>10s} {'Fermi spread':>12s}   (vs Fermi band error)")
    for name, rho in rounds:
        cells = ["-" if rho[key] is None else f"{rho[key]:.3f}" for key in CORRELATIONS]
        print(f"{name:14s} {rho['candidates']:10d} {cells[0]:>10s} {cells[1]:>12s} {'':13s} {cells[2]:>10s} "
              f"{cells[3]:>12s}")
    if args.plot:
        plot(points, args.plot, targets)
    table = {f"{strategy}_{n}": row for (strategy, n), row in result["table"].items()}
    print(json.dumps({"frames_to_target": result["frames_to_target"], "table": table}))


if __name__ == "__main__":
    main()
