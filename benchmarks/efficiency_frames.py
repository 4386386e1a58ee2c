"""DFT frames for the data-efficiency benchmark (``benchmarks/data_efficiency.py``): real pw.x SCFs of
strained, rattled 8-atom cubic cells, projected onto one basis made from the PseudoDojo files.

Usage: OMP_NUM_THREADS=1 python benchmarks/efficiency_frames.py --material Si --frames 40 --first-seed 0 \
           --out pool.h5 [--pseudo-dir /work/shared/pseudos/PseudoDojo-0.4-PBE-SR-standard-noCC] \
           [--preset DZP] [--ecut 36] [--strain 0.03] [--rattle 0.02,0.20] [--basis basis.h5]
       ... --material Si:34 --material Si_hex:6 --out pool.h5   (several structures in one file)

``--material Si`` is diamond Si (a = 5.43 A), ``SiC`` zincblende 3C-SiC (a = 4.36 A; the "other material"
a model is fine-tuned from), ``Si_hex`` lonsdaleite Si (8-atom orthorhombic cell, a = 3.84 A, ideal c/a and
u: the same bond length as diamond, eclipsed third neighbours; the rare structure of a mixed pool).
``NAME:N`` makes N frames of NAME (default ``--frames``), each material's seeds from ``--first-seed``.
Each frame gets a random symmetric strain of up to ``--strain`` per component and
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
from ase.build import bulk

from slem.data.frame import read_frames, write_frames
from slem.qe.inputs import pp_input, pw_input, run_qe

DOJO = Path(os.environ.get("SLEM_DOJO", "/work/shared/pseudos/PseudoDojo-0.4-PBE-SR-standard-noCC"))
FCC = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
CUBIC = np.vstack([FCC, FCC + 0.25])
HEX = bulk("SiSi", "wurtzite", a=3.84, c=3.84 * (8 / 3) ** 0.5, orthorhombic=True)
MATERIALS = {  # symbols, fractional positions and cell (A) of the ideal 8-atom cell, pw.x k-mesh
    "Si": (["Si"] * 8, CUBIC, 5.43 * np.eye(3), (2, 2, 2)),
    "SiC": (["Si"] * 4 + ["C"] * 4, CUBIC, 4.36 * np.eye(3), (2, 2, 2)),
    # the cubic cells' k-point density: 6.65 and 6.27 A take 2 points like 5.43 A, 3.84 A takes 3
    "Si_hex": (["Si"] * 8, HEX.get_scaled_positions(), HEX.cell.array, (3, 2, 2)),
}
# A distorted Si8 cell's Gamma point (the fcc X points folded) has a HOMO-LUMO gap of tens of meV: with
# fixed occupations its SCF sloshes at 1e-3 Ry for 100 iterations (rms 0.05 A, 3 % strain), with the
# pipeline's fallback smearing it converges in 11. Every frame gets it, so all are alike.
SMEARING = {"occupations": "smearing", "smearing": "mv", "degauss": 0.01}


def structure(material: str, seed: int, strain: float, rattle: tuple[float, float]):
    symbols, fractional, ideal, _ = MATERIALS[material]
    rng = np.random.default_rng(seed)
    eps = strain * rng.uniform(-1, 1, (3, 3))
    cell = ideal @ (np.eye(3) + 0.5 * (eps + eps.T))
    rms = rng.uniform(*rattle)
    return symbols, fractional @ cell + rms * rng.normal(size=(8, 3)), cell, rms


def requested(materials: list[str], frames: int) -> list[tuple[str, int]]:
    """``NAME`` or ``NAME:N`` per --material: (name, number of frames)."""
    out = []
    for item in materials:
        name, _, count = item.partition(":")
        if name not in MATERIALS:
            raise SystemExit(f"--material {item}: unknown {name!r}; choose from {sorted(MATERIALS)}")
        out.append((name, int(count) if count else frames))
    return out


def make_basis(pseudo_dir: Path, preset: str, out: Path) -> None:
    upfs = [str(pseudo_dir / f"{element}.upf") for element in ("Si", "C")]
    command = ["slem", "basis", *upfs, "--preset", preset, "-o", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", action="append", help=f"NAME or NAME:N, repeatable; NAME one of "
                        f"{sorted(MATERIALS)} (default Si)")
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
    jobs = requested(args.material or ["Si"], args.frames)
    ecut = args.ecut or (74.0 if any("C" in MATERIALS[name][0] for name, _ in jobs) else 36.0)
    work = Path(tempfile.mkdtemp(prefix="efficiency_"))
    basis = args.basis or work / "basis.h5"
    if args.basis is None:
        make_basis(args.pseudo_dir, args.preset, basis)
    frames = []
    for material, seed in [(m, args.first_seed + i) for m, n in jobs for i in range(n)]:
        symbols, pos, cell, rms = structure(material, seed, args.strain, rattle)
        run = work / f"{material}_frame{seed}"
        start = time.perf_counter()
        pseudos = {s: f"{s}.upf" for s in set(symbols)}
        mesh = MATERIALS[material][3]
        text = pw_input(symbols, pos, cell, pseudos, ecut, mesh, pseudo_dir=args.pseudo_dir, nbnd=28,
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
                          "rattle_rms": rms, "dft_s": seconds, "label": f"{material}_seed{seed}"}
        frames.append(frame)
        print(f"{material} seed {seed}: rms {rms:.3f} A, {seconds:.0f} s", flush=True)
    write_frames(args.out, frames, attrs={"generator": "benchmarks/efficiency_frames.py"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
