"""Δ_so at Γ of the ideal diamond Si cell from a trained spin-orbit model, against the LCAO H and pw.x.

Usage: OMP_NUM_THREADS=1 python benchmarks/spin_orbit_model.py MODEL.pt BASIS.h5 --pseudo-dir DIR
           [--ecut 28] [--kmesh 4] [--workdir DIR]

A pipeline run with ``--spin-orbit`` trains on thermal frames, whose top valence splitting at Γ is mostly the
distortion's crystal field (docs/spin-orbit.md). The ideal cubic Si8 cell, which no training frame is, holds
the clean spin-orbit splitting: the j = 3/2 quartet over the j = 1/2 doublet of Γ25'. This runs its pw.x SCF
(noncolin, lspinorb, the FR file of DIR, an unshifted mesh that holds Γ), projects it onto BASIS (the model's
basis: the pipeline's training folder holds it as basis.h5), predicts it with MODEL and prints the splitting
of the three, read at the same band indices (``slem/evaluate/splitting.py``), with the fast protocol's overlap
tolerance and without one.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from efficiency_frames import structure  # same folder
from fast_protocol import fast_inputs

from slem.data.frame import read_frames
from slem.evaluate.compare import eigenvalues
from slem.evaluate.splitting import splitting_entry, splitting_levels
from slem.qe.inputs import pp_input, pw_input, run_qe
from slem.qe.xml import read_qe_xml
from slem.units import HARTREE_EV


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("model", type=Path)
    parser.add_argument("basis", type=Path)
    parser.add_argument("--pseudo-dir", type=Path, required=True, help="holds the fully relativistic Si.upf")
    parser.add_argument("--ecut", type=float, default=28.0, help="Ry (the fast protocol's low hint)")
    parser.add_argument("--kmesh", type=int, default=4)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="spin_orbit_model_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    symbols, positions, cell, _ = structure("Si", 0, strain=0.0, rattle=(0.0, 0.0))  # the ideal cubic Si8
    text = pw_input(symbols, positions, cell, {"Si": "Si.upf"}, args.ecut, (args.kmesh,) * 3,
                    pseudo_dir=args.pseudo_dir, nbnd=40,
                    system={"noncolin": True, "lspinorb": True})
    run_qe("pw.x", text, work, "scf")
    run_qe("pp.x", pp_input(), work, "pp")
    slem = ["--threads", "1"]
    subprocess.run(["slem", "project", "--scf-dir", str(work / "out" / "pwscf.save"), "--potential",
                    str(work / "vtot.dat"), "--basis", str(args.basis), "--pseudo-dir", str(args.pseudo_dir),
                    "-o", str(work / "reference.h5"), *slem], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["slem", "predict", str(args.model), str(work / "reference.h5"), "-o",
                    str(work / "predicted.h5"), *slem], check=True, stdout=subprocess.DEVNULL)
    reference, predicted = (read_frames(work / f"{name}.h5")[0] for name in ("reference", "predicted"))
    scf = read_qe_xml(work / "out" / "pwscf.save")
    gamma = int(np.argmin(np.linalg.norm(scf.kpoints_cart, axis=1)))
    pw = scf.eigenvalues_ha[gamma][None] * HARTREE_EV
    k = np.zeros((1, 3))
    n_valence = int(round(reference.metadata["n_electrons"]))  # one electron per spinor band
    tolerance = float(fast_inputs("validation")["settings"]["overlap_tolerance"])
    print(f"ideal Si8, {args.ecut:g} Ry, {args.kmesh}^3 mesh; model {args.model}")
    print(f"{'overlap tolerance':>18s} {'bands':>8s} {'pw.x':>8s} {'LCAO':>8s} {'SLEM':>8s} "
          f"{'SLEM-LCAO':>10s} {'SLEM/pw.x':>10s}")
    for tol in (tolerance, 0.0):
        lcao, model = eigenvalues(reference, reference, k, tol), eigenvalues(predicted, predicted, k, tol)
        entry = splitting_entry(model, lcao, splitting_levels(lcao, n_valence), k, pw)
        print(f"{tol:18g} {str(tuple(entry['bands'])):>8s} {entry['pw_meV']:8.2f} "
              f"{entry['reference_meV']:8.2f} {entry['predicted_meV']:8.2f} {entry['error_meV']:10.2f} "
              f"{entry['predicted_meV'] / entry['pw_meV']:10.3f}")


if __name__ == "__main__":
    main()
