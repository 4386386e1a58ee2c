"""Time ``slem project`` against the pw.x SCF it starts from.

Usage: python benchmarks/projection.py [--systems si2,sic,si8,si64] [--workdir DIR]

Runs pw.x serially (OMP_NUM_THREADS=1), pp.x, builds the DZP basis and projects, then prints
a table of SCF time, projection time and their ratio. Results are recorded in
docs/projection.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from slem.basis.generate import generate_basis
from slem.projection.project import project
from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pp_input, pw_input, run_qe
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
    scf_time = run_qe("pw.x", pw_input(symbols, pos, cell, pseudos, ecut, kmesh), folder, "scf")
    pp_time = run_qe("pp.x", pp_input(), folder, "pp")
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upfs = {label: read_upf(DEFAULT_PSEUDO_DIR / f) for label, f in scf.pseudo_files.items()}
    start = time.perf_counter()
    bases = {u.element: generate_basis(u.path, "DZP") for u in upfs.values()}
    basis_time = time.perf_counter() - start
    start = time.perf_counter()
    result = project(scf, read_filplot(folder / "vtot.dat"), bases, upfs)
    project_time = time.perf_counter() - start
    return {
        "system": name,
        "atoms": len(symbols),
        "ecut": ecut,
        "scf_kmesh": kmesh,
        "scf": scf_time,
        "pp": pp_time,
        "basis": basis_time,
        "project": project_time,
        "proj_kmesh": result.checks["kmesh"],
        "tr_ds_err": result.checks["sum_tr_ds_error"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="si2,sic,si8")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slem-bench-"))
    rows = [run(name, workdir) for name in args.systems.split(",")]
    print(
        f"{'system':8} {'atoms':>5} {'ecut':>5} {'SCF k':>8} {'SCF s':>7} {'pp s':>5} {'proj k':>9} "
        f"{'proj s':>7} {'proj/SCF':>8} {'Tr(DS)-N':>9}"
    )
    for r in rows:
        print(
            f"{r['system']:8} {r['atoms']:5d} {r['ecut']:5.0f} {'x'.join(map(str, r['scf_kmesh'])):>8} "
            f"{r['scf']:7.1f} {r['pp']:5.1f} {'x'.join(map(str, r['proj_kmesh'])):>9} {r['project']:7.1f} "
            f"{r['project'] / r['scf']:8.2f} {r['tr_ds_err']:9.1e}"
        )


if __name__ == "__main__":
    main()
