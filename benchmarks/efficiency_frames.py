"""DFT frames for the data-efficiency benchmark (``benchmarks/data_efficiency.py``): real pw.x SCFs of
strained, rattled 8-atom cubic cells, projected onto one basis made from the PseudoDojo files.

Usage: OMP_NUM_THREADS=1 python benchmarks/efficiency_frames.py --material Si --frames 40 --first-seed 0 \
           --out pool.h5 [--pseudo-dir /work/shared/pseudos/PseudoDojo-0.4-PBE-SR-standard-noCC] \
           [--preset DZP] [--ecut 36] [--strain 0.03] [--rattle 0.02,0.20] [--basis basis.h5]

``--material Si`` is diamond Si (a = 5.43 A), ``SiC`` zincblende 3C-SiC (a = 4.36 A; the "other material"
a model is fine-tuned from). Each frame gets a random symmetric strain of up to ``--strain`` per component and
Gaussian displacements whose rms is drawn uniformly from ``--rattle`` (A), so the frames range from nearly
ideal to strongly distorted, as MD snapshots at several temperatures would. The basis is made once for Si and
C from the given files (``--basis`` reuses one): Si frames and SiC frames share the Si orbitals, which
fine-tuning across materials needs. Every frame's metadata records ``dft_s``, the wall seconds of its pw.x,
pp.x and projection, which the benchmark charges to each strategy per DFT frame it uses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from slem.data.frame import read_frames, write_frames
from slem.qe.inputs import pp_input, pw_input, run_qe

DOJO = Path(os.environ.get("SLEM_DOJO", "/work/shared/pseudos/PseudoDojo-0.4-PBE-SR-standard-noCC"))
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
MATERIALS = {  # symbols of the 8 sites (fcc, then fcc + 1/4), lattice constant (A)
    "Si": (["Si"] * 8, 5.43),
    "SiC": (["Si"] * 4 + ["C"] * 4, 4.36),
}
# A distorted Si8 cell's Gamma point (the fcc X points folded) has a HOMO-LUMO gap of tens of meV: with
# fixed occupations its SCF sloshes at 1e-3 Ry for 100 iterations (rms 0.05 A, 3 % strain), with the
# pipeline's fallback smearing it converges in 11. Every frame gets it, so all are alike.
SMEARING = {"occupations": "smearing", "smearing": "mv", "degauss": 0.01}


def structure(material: str, seed: int, strain: float, rattle: tuple[float, float]):
    symbols, a = MATERIALS[material]
    rng = np.random.default_rng(seed)
    eps = strain * rng.uniform(-1, 1, (3, 3))
    cell = a * (np.eye(3) + 0.5 * (eps + eps.T))
    rms = rng.uniform(*rattle)
    fractional = np.vstack([FCC, FCC + 0.25])
    return symbols, fractional @ cell + rms * rng.normal(size=(8, 3)), cell, rms


def make_basis(pseudo_dir: Path, preset: str, out: Path) -> None:
    upfs = [str(pseudo_dir / f"{element}.upf") for element in ("Si", "C")]
    command = ["slem", "basis", *upfs, "--preset", preset, "-o", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", choices=sorted(MATERIALS), default="Si")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pseudo-dir", type=Path, default=DOJO)
    parser.add_argument("--preset", default="DZP")
    parser.add_argument("--basis", type=Path, help="an existing basis file (default: made here)")
    parser.add_argument("--ecut", type=float, help="Ry (default: 36 for Si, 74 with C, PseudoDojo's hints)")
    parser.add_argument("--strain", type=float, default=0.03)
    parser.add_argument("--rattle", default="0.02,0.20", help="range of the rms displacement (A)")
    args = parser.parse_args()
    rattle = tuple(float(x) for x in args.rattle.split(","))
    ecut = args.ecut or (36.0 if args.material == "Si" else 74.0)
    work = Path(tempfile.mkdtemp(prefix=f"efficiency_{args.material}_"))
    basis = args.basis or work / "basis.h5"
    if args.basis is None:
        make_basis(args.pseudo_dir, args.preset, basis)
    frames = []
    for seed in range(args.first_seed, args.first_seed + args.frames):
        symbols, pos, cell, rms = structure(args.material, seed, args.strain, rattle)
        run = work / f"frame{seed}"
        start = time.perf_counter()
        pseudos = {s: f"{s}.upf" for s in set(symbols)}
        text = pw_input(symbols, pos, cell, pseudos, ecut, (2, 2, 2), pseudo_dir=args.pseudo_dir, nbnd=28,
                        system=SMEARING)
        run_qe("pw.x", text, run, "scf")
        run_qe("pp.x", pp_input(), run, "pp")
        out = run / "frame.h5"
        subprocess.run(["slem", "project", "--scf-dir", str(run / "out" / "pwscf.save"), "--potential",
                        str(run / "vtot.dat"), "--basis", str(basis), "--pseudo-dir", str(args.pseudo_dir),
                        "-o", str(out), "--threads", "1"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        frame = read_frames(out)[0]
        frame.metadata = {**frame.metadata, "generator": "benchmarks/efficiency_frames.py", "seed": seed,
                          "rattle_rms": rms, "dft_s": seconds, "label": f"{args.material}_seed{seed}"}
        frames.append(frame)
        print(f"{args.material} seed {seed}: rms {rms:.3f} A, {seconds:.0f} s", flush=True)
    write_frames(args.out, frames, attrs={"generator": "benchmarks/efficiency_frames.py"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
