"""Band edges and DOS of large Si supercells without dense diagonalisation (``slem.spectrum``), CPU.

Usage: python benchmarks/spectrum.py [--sizes 512,4096,32768] [--moments 256] [--vectors 4]
                                     [--edges-max-atoms 4096] [--max-load 1.5] [--force]

The H and S are "predicted-like": the projected Si8 frame of tests/data/si8_frames.h5 (SZ basis 1s1p,
pairs to 7.4 Angstrom) tiled into an n x n x n supercell (``slem.data.supercell``), every block then
perturbed independently (H by 10 meV, S by 1e-4, Gaussian), as a model's errors would, so the tiled
crystal's degeneracies are gone and H(R), H(-R)^T differ (the assembly symmetrises). Per size, in its own
subprocess so the peak RSS (getrusage) is its own: CSR assembly of H and S at Gamma, KPM DOS (Jackson,
conjugate gradients on S), HOMO/LUMO by shift-invert Lanczos with the inertia of the sparse LU. The
shift-invert LU's fill grows like n^(4/3) or faster, so edges run up to ``--edges-max-atoms`` only;
beyond, the KPM Fermi level is reported. At 512 atoms the dense scipy.linalg.eigh cross-check is added.

Sizes above 4,096 atoms run only when the 1-minute load average is below ``--max-load`` (the machine is
shared; timings under load measure the neighbours), unless ``--force``. Results: docs/spectrum.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SI8 = Path(__file__).resolve().parents[1] / "tests" / "data" / "si8_frames.h5"
H_NOISE_EV, S_NOISE = 0.01, 1e-4


def predicted_like(n: int, seed: int = 0):
    """The tiled, perturbed Si8 frame with n^3 cells (8 n^3 atoms)."""
    import numpy as np

    from slem.data.frame import read_frames
    from slem.data.supercell import supercell_frame

    frame = supercell_frame(read_frames(SI8, [0])[0], (n, n, n), operators=["H", "S"])
    rng = np.random.default_rng(seed)
    for name, scale in (("H", H_NOISE_EV), ("S", S_NOISE)):
        values = frame.operators[name]
        values += scale * rng.standard_normal(values.shape)  # in place: no second copy at 32,768 atoms
    return frame


def measure(n_atoms: int, moments: int, vectors: int, edges: bool, dense: bool) -> dict:
    import numpy as np

    from slem.spectrum.analysis import frame_spectrum, peak_rss_mb

    n = round((n_atoms / 8) ** (1 / 3))
    start = time.perf_counter()
    frame = predicted_like(n)
    build_s = time.perf_counter() - start
    result = frame_spectrum(
        frame,
        n_moments=moments,
        n_vectors=vectors,
        edges=edges,
        nearest=4,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    row = {
        "atoms": n_atoms,
        "orbitals": result["n_orbitals"],
        "nnz": result["nnz"],
        "build_s": build_s,
        **result["timings"],
        "kpm_moments": moments,
        "kpm_vectors": vectors,
        "kpm_resolution_eV": result["kpm"]["resolution_eV"],
        "cg_iterations_per_solve": result["kpm"]["overlap_cg_iterations"]
        / max(result["kpm"]["overlap_solves"], 1),
        "fermi_level_kpm_eV": result["kpm"]["fermi_level_eV"],
        "edges": result["edges"],
        "states_below_midgap": result["kpm"].get("states_below_midgap"),
        "states_below_midgap_error": result["kpm"].get("states_below_midgap_error"),
        "n_occupied": 2 * n_atoms,
    }
    if dense and result["edges"]:
        import scipy.linalg

        from slem.spectrum.sparse import BlochPattern

        pattern = BlochPattern(frame)
        h, s = pattern.matrix("H").toarray(), pattern.matrix("S").toarray()
        start = time.perf_counter()
        energies = scipy.linalg.eigh(h, s, eigvals_only=True)
        n_occ = 2 * n_atoms
        row["dense"] = {
            "seconds": time.perf_counter() - start,
            "homo_eV": float(energies[n_occ - 1]),
            "lumo_eV": float(energies[n_occ]),
            "homo_error_eV": abs(result["edges"]["homo_eV"] - float(energies[n_occ - 1])),
            "lumo_error_eV": abs(result["edges"]["lumo_eV"] - float(energies[n_occ])),
            "inertia_exact": int(
                result["edges"]["inertia"] == int((energies < result["edges"]["sigma_eV"]).sum())
            ),
        }
        row["peak_rss_mb_with_dense"] = peak_rss_mb()
        del h, s, np
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="512,4096,32768", help="atoms per supercell (8 n^3)")
    parser.add_argument("--moments", type=int, default=256)
    parser.add_argument("--vectors", type=int, default=4)
    parser.add_argument(
        "--edges-max-atoms",
        type=int,
        default=4096,
        help="shift-invert edges up to this size (the LU's fill limits it)",
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="run sizes > 4096 only below this load")
    parser.add_argument("--force", action="store_true", help="run every size whatever the load")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (SuperLU and CSR products: 1)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        row = measure(
            args.worker,
            args.moments,
            args.vectors,
            args.worker <= args.edges_max_atoms,
            dense=args.worker <= 512,
        )
        print(json.dumps(row))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bad = [n for n in sizes if n < 64 or 8 * round((n / 8) ** (1 / 3)) ** 3 != n]
    if bad:
        parser.error(f"--sizes must be 8 n^3 atoms with n >= 2 (64, 512, 4096, 32768), got {bad}")
    env = {**os.environ, **{v: str(args.threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}}
    rows, skipped = [], []
    for n in sizes:
        load = os.getloadavg()[0]
        if n > 4096 and load >= args.max_load and not args.force:
            skipped.append(
                f"{n} atoms skipped: 1-minute load {load:.2f} >= {args.max_load} (--force runs it)"
            )
            print(skipped[-1], file=sys.stderr, flush=True)
            continue
        print(f"{n} atoms (load {load:.2f}) ...", file=sys.stderr, flush=True)
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            str(n),
            "--moments",
            str(args.moments),
            "--vectors",
            str(args.vectors),
            "--edges-max-atoms",
            str(args.edges_max_atoms),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            sys.exit(f"{n} atoms failed:\n{proc.stderr[-3000:]}")
        rows.append(
            {
                **json.loads(proc.stdout.strip().splitlines()[-1]),
                "wall_s": time.perf_counter() - start,
                "load_before": load,
                "load_after": os.getloadavg()[0],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        f"threads: {args.threads}   moments: {args.moments}   vectors: {args.vectors}   "
        f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    head = (
        "atoms",
        "orbitals",
        "nnz(H)",
        "build s",
        "assemble s",
        "KPM s (cpu)",
        "CG it",
        "edges s (cpu)",
        "LU entries",
        "peak MB KPM/all",
        "HOMO eV",
        "gap eV",
        "E_F(KPM)",
        "N below mid-gap",
        "load",
    )
    lines = [head]
    for r in rows:
        e = r["edges"]
        lines.append(
            (
                str(r["atoms"]),
                str(r["orbitals"]),
                f"{r['nnz']:.3g}",
                f"{r['build_s']:.1f}",
                f"{r['assembly_s']:.1f}",
                f"{r['kpm_s']:.0f} ({r['kpm_cpu_s']:.0f})",
                f"{r['cg_iterations_per_solve']:.0f}",
                f"{r['edges_s']:.0f} ({r['edges_cpu_s']:.0f})" if e else "-",
                f"{e['factorizations'][-1]['lu_entries']:.2g}" if e else "-",
                f"{r['peak_rss_before_edges_mb']:.0f}/{r['peak_rss_mb']:.0f}",
                f"{e['homo_eV']:.4f}" if e else "-",
                f"{e['gap_eV']:.4f}" if e else "-",
                f"{r['fermi_level_kpm_eV']:.3f}",
                f"{r['states_below_midgap']:.0f}+-{r['states_below_midgap_error']:.0f}/{r['n_occupied']}"
                if e
                else "-",
                f"{r['load_before']:.1f}",
            )
        )
    width = [max(len(line[k]) for line in lines) for k in range(len(head))]
    print("\n".join("  ".join(c.rjust(w) for c, w in zip(line, width, strict=True)) for line in lines))
    for r in rows:
        if "dense" in r:
            d = r["dense"]
            print(
                f"dense check at {r['atoms']} atoms: scipy.linalg.eigh {d['seconds']:.1f} s, HOMO error "
                f"{d['homo_error_eV']:.2e} eV, LUMO error {d['lumo_error_eV']:.2e} eV, inertia exact: "
                f"{bool(d['inertia_exact'])}"
            )
    for line in skipped:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))


if __name__ == "__main__":
    main()
