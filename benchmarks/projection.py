"""Time ``slem project`` against the pw.x SCF it starts from.

Usage: python benchmarks/projection.py [--systems si2,sic,si8,si64] [--workdir DIR]

Runs pw.x serially (OMP_NUM_THREADS=1), pp.x, builds the DZP basis and projects, then prints
a table of SCF time, projection time and their ratio. Both are given as CPU time (pw.x's own
"PWSCF ... CPU" line; the projection's process time) and wall time: on a shared machine the
wall times follow the load, the CPU times and their ratio do not. ``--workdir`` reuses SCFs
already there. Results are recorded in docs/projection.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from slem.allocator import keep_freed_memory
from slem.basis.generate import generate_basis
from slem.projection.project import project
from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pp_input, pw_input, pw_seconds, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import read_upf
from slem.qe.xml import read_qe_xml

PSEUDOS = {"Si": "Si.pbe-rrkj.UPF", "C": "C.pbe-mt_gipaw.UPF"}


def _fcc(a: float) -> np.ndarray:
    return 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _si_cubic(repeat: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    a = 5.43
    base = np.array(
        [
            [0, 0, 0],
            [0, 0.5, 0.5],
            [0.5, 0, 0.5],
            [0.5, 0.5, 0],
            [0.25] * 3,
            [0.25, 0.75, 0.75],
            [0.75, 0.25, 0.75],
            [0.75, 0.75, 0.25],
        ]
    )
    shifts = np.array([[i, j, k] for i in range(repeat) for j in range(repeat) for k in range(repeat)])
    frac = (base[None, :, :] + shifts[:, None, :]).reshape(-1, 3) / repeat
    cell = np.eye(3) * a * repeat
    pos = frac @ cell + np.random.default_rng(seed).normal(scale=0.05, size=(len(frac), 3))
    return ["Si"] * len(pos), pos, cell


SYSTEMS = {
    "si2": lambda: (["Si", "Si"], np.array([[0, 0, 0], [1.3575] * 3]), _fcc(5.43), 30.0, (6, 6, 6)),
    "sic": lambda: (["Si", "C"], np.array([[0, 0, 0], [1.09] * 3]), _fcc(4.36), 40.0, (6, 6, 6)),
    "si8": lambda: (*_si_cubic(1, 0), 30.0, (3, 3, 3)),
    "si64": lambda: (*_si_cubic(2, 1), 20.0, (1, 1, 1)),
}


def run(name: str, workdir: Path) -> dict:
    symbols, pos, cell, ecut, kmesh = SYSTEMS[name]()
    folder = workdir / name
    pseudos = {s: PSEUDOS[s] for s in set(symbols)}
    if not (folder / "vtot.dat").is_file():
        run_qe("pw.x", pw_input(symbols, pos, cell, pseudos, ecut, kmesh), folder, "scf")
        run_qe("pp.x", pp_input(), folder, "pp")
    scf_cpu, scf_wall = pw_seconds(folder / "scf.out")
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upfs = {label: read_upf(DEFAULT_PSEUDO_DIR / f) for label, f in scf.pseudo_files.items()}
    start = time.perf_counter()
    bases = {u.element: generate_basis(u.path, "DZP") for u in upfs.values()}
    basis_time = time.perf_counter() - start
    potential = read_filplot(folder / "vtot.dat")
    start, cpu = time.perf_counter(), time.process_time()
    result = project(scf, potential, bases, upfs)
    project_wall, project_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "system": name,
        "atoms": len(symbols),
        "ecut": ecut,
        "scf_kmesh": kmesh,
        "scf_cpu": scf_cpu,
        "scf_wall": scf_wall,
        "basis": basis_time,
        "project_cpu": project_cpu,
        "project_wall": project_wall,
        "proj_kmesh": result.checks["kmesh"],
        "pairs": result.checks["n_pairs"],
        "tr_ds_err": result.checks["sum_tr_ds_error"],
        "h_beyond": result.checks["max_h_beyond_ev"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="si2,sic,si8")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--system-malloc", action="store_true",
                        help="glibc's malloc defaults, not what the slem command sets (slem/allocator.py)")
    args = parser.parse_args()
    if not args.system_malloc:
        keep_freed_memory()  # as `slem project` does
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slem-bench-"))
    rows = [run(name, workdir) for name in args.systems.split(",")]
    print(
        f"{'system':8} {'atoms':>5} {'ecut':>5} {'SCF k':>6} {'SCF cpu':>8} {'SCF wall':>8} {'proj k':>7} "
        f"{'pairs':>6} {'proj cpu':>8} {'proj wall':>9} {'cpu ratio':>9} {'Tr(DS)-N':>9} {'|H| beyond':>10}"
    )
    for r in rows:
        print(
            f"{r['system']:8} {r['atoms']:5d} {r['ecut']:5.0f} {'x'.join(map(str, r['scf_kmesh'])):>6} "
            f"{r['scf_cpu']:8.2f} {r['scf_wall']:8.2f} {'x'.join(map(str, r['proj_kmesh'])):>7} "
            f"{r['pairs']:6d} {r['project_cpu']:8.2f} {r['project_wall']:9.2f} "
            f"{r['project_cpu'] / r['scf_cpu']:9.2f} {r['tr_ds_err']:9.1e} {r['h_beyond']:10.1e}"
        )


if __name__ == "__main__":
    main()
