"""Minimal pw.x / pp.x input writers and serial runners (tests, benchmarks, examples).

Production runs go through aiida-quantumespresso; these helpers exist so that the projection
can be checked against real pw.x runs without AiiDA. Inputs use ibrav=0 and Angstrom, the
form the projection's readers check against.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

DEFAULT_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")


class QeRunError(RuntimeError):
    """pw.x or pp.x failed or is not installed."""


def _value(v: object) -> str:
    if isinstance(v, bool):
        return ".true." if v else ".false."
    if isinstance(v, str):
        return f"'{v}'"
    return repr(v) if isinstance(v, float) else str(v)


def _namelist(name: str, values: Mapping[str, object]) -> str:
    body = "".join(f"  {k} = {_value(v)}\n" for k, v in values.items())
    return f"&{name}\n{body}/\n"


def pw_input(
    symbols: Sequence[str],
    positions: np.ndarray,
    cell: np.ndarray,
    pseudos: Mapping[str, str],
    ecutwfc: float,
    kpoints: tuple[int, int, int] | np.ndarray,
    calculation: str = "scf",
    prefix: str = "pwscf",
    outdir: str = "./out",
    pseudo_dir: str | Path = DEFAULT_PSEUDO_DIR,
    conv_thr: float = 1e-10,
    nbnd: int | None = None,
    system: Mapping[str, object] | None = None,
) -> str:
    """pw.x input text. ``kpoints``: a Monkhorst-Pack mesh, or an (nk, 3) array of fractional k."""
    species = list(dict.fromkeys(symbols))
    system_nl = {"ibrav": 0, "nat": len(symbols), "ntyp": len(species), "ecutwfc": float(ecutwfc)}
    system_nl["occupations"] = "fixed"
    if nbnd is not None:
        system_nl["nbnd"] = int(nbnd)
    system_nl.update(system or {})
    text = _namelist(
        "control",
        {"calculation": calculation, "prefix": prefix, "outdir": outdir, "pseudo_dir": str(pseudo_dir)},
    )
    text += _namelist("system", system_nl)
    electrons = {"conv_thr": conv_thr}
    if calculation == "bands":
        electrons["diago_full_acc"] = True
    text += _namelist("electrons", electrons)
    text += "ATOMIC_SPECIES\n" + "".join(f"{s} 1.0 {pseudos[s]}\n" for s in species)
    text += "CELL_PARAMETERS angstrom\n" + "".join(" ".join(f"{x:.12f}" for x in row) + "\n" for row in cell)
    text += "ATOMIC_POSITIONS angstrom\n"
    text += "".join(
        f"{s} " + " ".join(f"{x:.12f}" for x in p) + "\n" for s, p in zip(symbols, positions, strict=True)
    )
    k = np.asarray(kpoints)
    if k.ndim == 1:
        text += "K_POINTS automatic\n" + " ".join(str(int(n)) for n in k) + " 0 0 0\n"
    else:
        text += f"K_POINTS crystal\n{len(k)}\n" + "".join(
            " ".join(f"{x:.12f}" for x in kk) + " 1\n" for kk in k
        )
    return text


def pp_input(
    prefix: str = "pwscf", outdir: str = "./out", filplot: str = "vtot.dat", spin_component: int | None = None
) -> str:
    """pp.x input writing the total local potential V_loc + V_H + V_xc (plot_num=1); for an nspin=2 SCF,
    ``spin_component`` 1 writes the up channel's, 2 the down channel's (0, pp.x's default, their mean)."""
    values = {"prefix": prefix, "outdir": outdir, "filplot": filplot, "plot_num": 1}
    if spin_component is not None:
        values["spin_component"] = int(spin_component)
    return _namelist("inputpp", values)


def bands_symmetry_input(prefix: str = "pwscf", outdir: str = "./out") -> str:
    """bands.x input that names each level's irreducible representation (read by slem.qe.band_symmetry)."""
    return _namelist("bands", {"prefix": prefix, "outdir": outdir, "filband": "bands.dat", "lsym": True})


def run_qe(executable: str, text: str, workdir: str | Path, name: str) -> float:
    """Run one QE executable serially in ``workdir``; returns the wall time in seconds."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.in").write_text(text)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        with open(workdir / f"{name}.in") as stdin, open(workdir / f"{name}.out", "w") as stdout:
            proc = subprocess.run(
                [executable], stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT, cwd=workdir, env=env
            )
    except FileNotFoundError as exc:
        raise QeRunError(
            f"{executable} is not installed or not on PATH (Debian: apt install quantum-espresso)"
        ) from exc
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (workdir / f"{name}.out").read_text()[-2000:]
        raise QeRunError(f"{executable} failed in {workdir} (exit {proc.returncode}):\n{tail}")
    return elapsed


def pw_seconds(output: str | Path) -> tuple[float, float]:
    """(CPU, wall) seconds of a finished pw.x run, from its final 'PWSCF : ... CPU ... WALL' line."""
    found = re.findall(r"PWSCF\s*:\s*(.+?)CPU\s+(.+?)WALL", Path(output).read_text())
    if not found:
        return float("nan"), float("nan")
    units = {"h": 3600, "m": 60, "s": 1}  # QE writes '1h 2m', '3m45.12s' or '12.3s'
    cpu, wall = (
        sum(float(value) * units[unit] for value, unit in re.findall(r"([\d.]+)\s*([hms])", text))
        for text in found[-1]
    )
    return cpu, wall
