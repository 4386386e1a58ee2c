"""Committee uncertainty against true error: does the spread of models that differ only in their seed rank
held-out frames by their error?

Usage: python benchmarks/committee.py --candidates A.h5 [B.h5 ...] [--train tests/data/si8_frames.h5]
                                      [--members 4] [--steps 400] [--threads 2] [--out DIR]

Each member is ``slem train`` on the training frames with the fast protocol's model and optimiser
(workflows/protocols/train.yaml) for ``--steps`` steps, seed 0, 1, ...; then ``slem committee`` predicts the
candidate frames with every member. Candidates carry reference H (make them with
``tests/data/make_si8_frames.py --first-seed 100 --rattle 0.15``, say, at several rattles so that their
errors differ). Printed: per frame the H spread, the band spread and the error of the committee mean, by
spread; Spearman's rank correlation of spread and error (against 0 for a spread that carries no
information); the training and committee times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fast_protocol import fast_inputs  # same folder

from slem.train.duration import with_duration

ROOT = Path(__file__).resolve().parents[1]


def fast_config(train: Path, out: Path, seed: int, steps: int) -> dict:
    config = fast_inputs("train")["config"]
    model = dict(config["model"])
    model.pop("overlap", None)  # the frames file has no basis tables: S is learned here
    training = {**with_duration(config["training"], {"max_steps": steps}), "seed": seed,
                "validate_every": steps, "checkpoint_every": steps}
    return {"dataset": {"path": str(train)}, "operators": ["H", "S"], "output_dir": str(out),
            "model": model, "training": training}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", required=True, type=Path)
    parser.add_argument("--train", type=Path, default=ROOT / "tests" / "data" / "si8_frames.h5")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("committee_benchmark"))
    parser.add_argument("--reuse", action="store_true", help="keep members already trained in --out")
    args = parser.parse_args()
    if args.members < 2:
        parser.error("--members must be at least 2")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    models, train_s = [], []
    for seed in range(args.members):
        run = args.out / f"member_{seed}"
        config = args.out / f"member_{seed}.json"
        config.write_text(json.dumps(fast_config(args.train.resolve(), run.resolve(), seed, args.steps)))
        models.append(str(run / "model.pt"))
        if args.reuse and (run / "model.pt").is_file():
            continue
        start = time.perf_counter()
        subprocess.run(["slem", "train", str(config), "--no-progress", "--threads", str(args.threads)],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        train_s.append(time.perf_counter() - start)
        print(f"member {seed}: {train_s[-1]:.0f} s", file=sys.stderr, flush=True)
    report_path = args.out / "committee.json"
    start = time.perf_counter()
    frames = [arg for path in args.candidates for arg in ("--frames", str(path))]
    subprocess.run(["slem", "committee", *models, *frames, "-o", str(report_path), "--select", "3",
                    "--threads", str(args.threads)], check=True, env=env)
    committee_s = time.perf_counter() - start
    report = json.loads(report_path.read_text())
    rows = sorted(report["frames"], key=lambda r: -r["sigma_H_meV"])
    print(f"{args.members} members x {args.steps} steps (fast protocol model) on {args.train.name}; "
          f"{len(rows)} candidates; load average {os.getloadavg()[0]:.1f}; threads {args.threads}")
    print(f"{'frame':28s} {'H spread':>9s} {'band spread':>12s} {'error of mean':>14s} {'member error':>13s}")
    for r in rows:
        print(f"{r['label']:28s} {r['sigma_H_meV']:9.3f} {r['band_sigma_meV']:12.2f} "
              f"{r.get('error_H_meV', float('nan')):14.3f} {r.get('member_error_H_meV', float('nan')):13.3f}")
    rho, rho_bands = report["spearman_sigma_H_vs_error"], report["spearman_band_sigma_vs_error"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"Spearman(H spread, error) {fmt(rho)}   Spearman(band spread, error) {fmt(rho_bands)}   "
          f"(no information: 0) over {report['frames_with_reference']} frames")
    trained = "reused"
    if train_s:
        trained = f"{sum(train_s):.0f} s ({sum(train_s) / len(train_s):.0f} s per member)"
    print(f"training {trained}, committee {committee_s:.1f} s; report {report_path}")


if __name__ == "__main__":
    main()
