"""Peak memory of the AiiDA engine process while a large frame is validated: as the ``slem.validate`` CalcJob
(today's path: the compute node diagonalises) and in-process (the calcfunction the daemon used to run).

The frames are Si8 (tests/data, 1s1p) repeated into 64- and 512-atom supercells; the "predictions" are the
reference with every band 10 meV up. For each size the script

1. runs ``SlemValidateCalculation`` with ``aiida.engine.run`` in this process, as a daemon worker would,
   and records this process's peak RSS (``ru_maxrss``) before and after, plus the job's own peak RSS and
   time from the report;
2. then calls ``slem.evaluate.compare.compare`` here, as the old calcfunction did, and records the peak again.

ru_maxrss only grows, so each size's CalcJob run comes before any in-process run. Prints a table and the
ratio of the engine's growth in-process to its growth with the CalcJob.

    python benchmarks/validation_memory.py [--sizes 2 4] [--kpath 6 --random 2]

A temporary SQLite profile (``verdi presto``) in a temporary AIIDA_PATH keeps the user's profiles untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SI8 = ROOT / "tests" / "data" / "si8_frames.h5"


def frames_pair(reps: int, folder: Path) -> tuple[Path, Path, int, int]:
    """(predictions file, reference file, atoms, orbitals) of the reps^3 supercell of Si8 frame 0."""
    from slem.data.frame import read_frames, write_frames
    from slem.data.supercell import supercell_frame

    base = read_frames(SI8, [0])[0]
    reference = supercell_frame(base, (reps,) * 3)
    reference.metadata["label"] = f"si{reference.n_atoms}"
    predicted = supercell_frame(base, (reps,) * 3)
    predicted.metadata["label"] = reference.metadata["label"]
    predicted.operators["H"] = reference.operators["H"] + 0.01 * reference.operators["S"]
    ref = write_frames(folder / f"reference_{reps}.h5", [reference])
    pred = write_frames(folder / f"predictions_{reps}.h5", [predicted])
    return pred, ref, reference.n_atoms, int(reference.orbitals_per_atom.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4], help="supercell repetitions of Si8")
    parser.add_argument("--kpath", type=int, default=6)
    parser.add_argument("--random", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="slem_valmem_"))
    os.environ["AIIDA_PATH"] = str(work / "aiida")
    subprocess.run(
        ["verdi", "presto", "--profile-name", "valmem"], check=True, capture_output=True, text=True
    )
    from aiida import load_profile, orm
    from aiida.engine import run_get_node

    load_profile("valmem", allow_switch=True)
    from aiida_slem.calcjobs.validate import SlemValidateCalculation

    from aiida_slem.data.dataset import DatasetData
    from slem.evaluate.compare import compare
    from slem.evaluate.settings import Settings
    from slem.spectrum.analysis import peak_rss_mb

    computer = orm.load_computer("localhost")
    computer.set_minimum_job_poll_interval(0.0)
    code = orm.InstalledCode(
        computer=computer,
        filepath_executable=shutil.which("slem"),
        label="slem",
        prepend_text="export OMP_NUM_THREADS=1",
    ).store()
    settings = {"kpath_npoints": args.kpath, "n_random_k": args.random}
    metadata = {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}
    rows = []
    pairs = {reps: frames_pair(reps, work) for reps in args.sizes}
    start_mb = peak_rss_mb()
    for reps in args.sizes:  # every CalcJob first: ru_maxrss never comes down
        pred, ref, n_atoms, n_orb = pairs[reps]
        before = peak_rss_mb()
        wall = time.perf_counter()
        _, node = run_get_node(
            SlemValidateCalculation,
            code=code,
            predictions=DatasetData(pred).store(),
            reference=DatasetData(ref).store(),
            settings=orm.Dict(settings),
            metadata=metadata,
        )
        if not node.is_finished_ok:
            sys.exit(f"the validate job failed: {node.exit_status} {node.exit_message}")
        job = node.outputs.metrics["resources"]
        rows.append(
            {
                "atoms": n_atoms,
                "orbitals": n_orb,
                "route": "CalcJob",
                "engine_peak_before_mb": before,
                "engine_peak_after_mb": peak_rss_mb(),
                "job_peak_mb": job["peak_rss_mb"],
                "seconds": time.perf_counter() - wall,
                "valence_mae_meV": node.outputs.metrics["summary"]["valence_mae_vs_lcao_meV"],
            }
        )
    from slem.data.frame import read_frames

    for reps in args.sizes:
        pred, ref, n_atoms, n_orb = pairs[reps]
        before = peak_rss_mb()
        wall = time.perf_counter()
        reference = read_frames(ref)
        with tempfile.TemporaryDirectory() as tmp:
            report, _ = compare(
                read_frames(pred),
                reference,
                [reference[0].metadata["label"]],
                [32.0 * reps**3],
                Settings.from_dict(settings),
                Path(tmp),
            )
        rows.append(
            {
                "atoms": n_atoms,
                "orbitals": n_orb,
                "route": "in-process",
                "engine_peak_before_mb": before,
                "engine_peak_after_mb": peak_rss_mb(),
                "job_peak_mb": None,
                "seconds": time.perf_counter() - wall,
                "valence_mae_meV": report["summary"]["valence_mae_vs_lcao_meV"],
            }
        )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load}; validate job: OMP_NUM_THREADS=1; in-process: {os.cpu_count()} CPUs")
    print(f"engine peak RSS at start: {start_mb:.0f} MB; k-points {args.kpath} path + {args.random} random")
    print(f"{'atoms':>6} {'orbitals':>8} {'route':>11} {'engine peak before':>19} {'after':>7} "
          f"{'growth':>7} {'job peak':>9} {'wall s':>7} {'valence MAE':>12}")
    for row in rows:
        growth = row["engine_peak_after_mb"] - row["engine_peak_before_mb"]
        job = "-" if row["job_peak_mb"] is None else f"{row['job_peak_mb']:.0f}"
        print(
            f"{row['atoms']:>6} {row['orbitals']:>8} {row['route']:>11} "
            f"{row['engine_peak_before_mb']:>16.0f} MB {row['engine_peak_after_mb']:>7.0f} {growth:>7.0f} "
            f"{job:>9} {row['seconds']:>7.1f} "
            f"{row['valence_mae_meV']:>12.2e}"
        )
    calcjob = max(r["engine_peak_after_mb"] for r in rows if r["route"] == "CalcJob") - start_mb
    inproc = rows[-1]["engine_peak_after_mb"] - rows[len(args.sizes)]["engine_peak_before_mb"]
    print(f"engine growth in-process / with the CalcJob: {inproc:.0f} MB / {calcjob:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
