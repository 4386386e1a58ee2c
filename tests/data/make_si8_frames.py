"""Regenerate tests/data/si8_frames.h5: projected H, S, D of rattled 8-atom silicon cells.

Pipeline: ``slem basis`` (SZ, radius 3.7 Angstrom, the radius of DeePTB's Si example), pw.x SCF,
pp.x local potential, ``slem project``. The cells are the cubic diamond cell (a = 5.43 Angstrom)
with random strain (+-1.5 %) and atom displacements (0.08 Angstrom rms), one seed per frame.
Frames 0..N-3 are the train split, then one validation and one test frame.

    OMP_NUM_THREADS=1 python tests/data/make_si8_frames.py [--frames 6] [--out tests/data/si8_frames.h5]
                                                          [--first-seed 0] [--rattle 0.08]

``--first-seed`` and ``--rattle`` (rms displacement, Angstrom) make other frames of the same kind, e.g. the
candidates of ``benchmarks/committee.py``; the defaults make the shipped file.

Takes about a minute per frame on one core (pw.x at 20 Ry and a 2x2x2 mesh dominates).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from slem.data.frame import read_frames, write_frames
from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pp_input, pw_input, run_qe

UPF = "Si.pbe-rrkj.UPF"
A = 5.43
ECUT_RY = 20.0
DIAMOND = np.array(
    [
        [0, 0, 0],
        [0, 0.5, 0.5],
        [0.5, 0, 0.5],
        [0.5, 0.5, 0],
        [0.25, 0.25, 0.25],
        [0.25, 0.75, 0.75],
        [0.75, 0.25, 0.75],
        [0.75, 0.75, 0.25],
    ]
)


def structure(seed: int, rattle: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    strain = np.eye(3) + 0.015 * rng.uniform(-1, 1, (3, 3))
    cell = A * np.eye(3) @ (0.5 * (strain + strain.T))
    pos = DIAMOND @ cell + rattle * rng.normal(size=(8, 3))
    return cell, pos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--out", default=str(Path(__file__).parent / "si8_frames.h5"))
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--rattle", type=float, default=0.08, help="rms displacement (Angstrom)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="si8_"))
    basis = work / "basis.h5"
    subprocess.run(
        [
            "slem",
            "basis",
            str(DEFAULT_PSEUDO_DIR / UPF),
            "--preset",
            "SZ",
            "--radius",
            "Si=3.7",
            "-o",
            str(basis),
        ],
        check=True,
    )
    frames = []
    for seed in range(args.first_seed, args.first_seed + args.frames):
        cell, pos = structure(seed, args.rattle)
        run = work / f"frame{seed}"
        start = time.perf_counter()
        run_qe("pw.x", pw_input(["Si"] * 8, pos, cell, {"Si": UPF}, ECUT_RY, (2, 2, 2)), run, "scf")
        run_qe("pp.x", pp_input(), run, "pp")
        out = run / "frame.h5"
        subprocess.run(
            [
                "slem",
                "project",
                "--scf-dir",
                str(run / "out" / "pwscf.save"),
                "--potential",
                str(run / "vtot.dat"),
                "--basis",
                str(basis),
                "--pseudo-dir",
                str(DEFAULT_PSEUDO_DIR),
                "-o",
                str(out),
            ],
            check=True,
        )
        frame = read_frames(out)[0]
        frame.metadata = {**frame.metadata, "generator": "tests/data/make_si8_frames.py", "seed": seed,
                          "rattle": args.rattle, "label": f"seed{seed}_rattle{args.rattle:g}"}
        frames.append(frame)
        print(f"frame {seed}: {len(frame.pairs)} pairs, {time.perf_counter() - start:.0f} s", flush=True)
    n = len(frames)
    split = {"train": list(range(n - 2)), "validation": [n - 2], "test": [n - 1]}
    write_frames(args.out, frames, split=split, attrs={"generator": "tests/data/make_si8_frames.py"})
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
