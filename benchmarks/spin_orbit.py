"""Spin-orbit splittings of the projected spinor H against pw.x (docs/spin-orbit.md).

Usage: python benchmarks/spin_orbit.py [Si GaAs MoS2 WSe2 Bi2Se3] [--pseudo-dir DIR] [--workdir DIR]
       [--preset DZP] [--j-resolved off|auto|all]

For each material: a pw.x noncolin + lspinorb SCF with fully relativistic UPFs (DIR/<El>.upf; the repository
holds Si only, in tests/data/pseudos/pseudodojo-fr: take the others from PseudoDojo's FR table, github
PseudoDojo/ONCVPSP-PBE-FR, <El>/<El>_r.upf), pp.x, ``slem basis`` and ``slem project``, then pw.x bands at
the material's special points and 4 random k. Prints the splitting the issue names (pw.x, LCAO, their
difference and ratio) and the valence MAE within 3 eV below the VBM. For a centrosymmetric crystal
(Si, GaAs has none, Bi2Se3) it also prints the inversion parities at Gamma of the two highest valence and two
lowest conduction Kramers pairs: the LCAO states' with spin-orbit coupling, pw.x's from bands.x's double-group
irreps, and the LCAO states' without the spin-orbit operators (a band inversion exchanges them), and the LCAO
H's strong Z2 index from the parities of its occupied states at the 8 TRIMs. pw.x runs
serially; ``--workdir`` reuses runs already there.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slem.bands import band_energies
from slem.bands.bloch import BandsError
from slem.bands.parity import inversion_parities, z2_index
from slem.basis.generate import generate_basis
from slem.data.frame import Frame
from slem.data.operators import without_spin_orbit
from slem.projection.project import project
from slem.qe.band_symmetry import read_band_symmetry
from slem.qe.inputs import bands_symmetry_input, pp_input, pw_input, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import read_upf
from slem.qe.xml import read_qe_xml
from slem.units import HARTREE_EV

FR_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "pseudos" / "pseudodojo-fr"


@dataclass
class Case:
    symbols: list[str]
    frac: np.ndarray
    cell: np.ndarray
    ecut: float  # Ry, about PseudoDojo's normal hint of the hardest element
    mesh: tuple[int, int, int]
    special: dict[str, list[float]]
    split: tuple[str, int, int, str]  # k label, band offsets from the VBM index (upper, lower), what it is
    sheet: bool = False


def _fcc(a: float) -> np.ndarray:
    return 0.5 * a * (np.ones((3, 3)) - np.eye(3))


def _sheet(a: float, z: float, metal: str, chalcogen: str, ecut: float) -> Case:
    c = 20.0
    cell = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    frac = np.array([[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + z / c], [1 / 3, 2 / 3, 0.5 - z / c]])
    special = {"K": [1 / 3, 1 / 3, 0], "G": [0, 0, 0], "M": [0.5, 0, 0]}
    return Case([metal, chalcogen, chalcogen], frac, cell, ecut, (12, 12, 1), special,
                ("K", 0, 1, "K: top two valence bands"), sheet=True)  # fmt: skip


def _bi2se3() -> Case:
    # rhombohedral primitive cell from the hexagonal a, c (Nakajima 1963): Bi at +-u, Se1 at 0, Se2 at +-v
    a, c, u, v = 4.143, 28.636, 0.4008, 0.2117
    hexagonal = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    cell = np.array([[2 / 3, 1 / 3, 1 / 3], [-1 / 3, 1 / 3, 1 / 3], [-1 / 3, -2 / 3, 1 / 3]]) @ hexagonal
    frac = np.array([[u, u, u], [-u, -u, -u], [0, 0, 0], [v, v, v], [-v, -v, -v]])
    special = {"G": [0, 0, 0], "Z": [0.5, 0.5, 0.5], "F": [0.5, 0.5, 0]}
    # 66 Ry (Bi's normal hint; Se's low is 78) and a 4^3 mesh keep the SCF under an hour on 2 cores
    return Case(["Bi", "Bi", "Se", "Se", "Se"], frac, cell, 66.0, (4, 4, 4), special,
                ("G", -1, 0, "Gamma: gap (inverted by spin-orbit)"))  # fmt: skip


CASES = {
    "Si": Case(["Si", "Si"], np.array([[0, 0, 0], [0.25] * 3]), _fcc(5.43), 40.0, (4, 4, 4),
               {"G": [0, 0, 0], "X": [0.5, 0, 0.5], "L": [0.5, 0.5, 0.5]}, ("G", 0, 4, "Gamma: Delta_so")),
    "GaAs": Case(["Ga", "As"], np.array([[0, 0, 0], [0.25] * 3]), _fcc(5.75), 84.0, (6, 6, 6),
                 {"G": [0, 0, 0], "X": [0.5, 0, 0.5], "L": [0.5, 0.5, 0.5]}, ("G", 0, 4, "Gamma: Delta_so")),
    "MoS2": _sheet(3.19, 1.565, "Mo", "S", 80.0),
    "WSe2": _sheet(3.32, 1.675, "W", "Se", 86.0),
    "Bi2Se3": _bi2se3(),
}  # fmt: skip


def run_case(
    name: str, case: Case, pseudo_dir: Path, workdir: Path, preset: str, j_resolved: str = "off"
) -> dict:
    folder = workdir / name
    positions = case.frac @ case.cell
    pseudos = {s: f"{s}.upf" for s in case.symbols}
    upfs = {s: read_upf(pseudo_dir / f, spin_orbit=True) for s, f in pseudos.items()}
    n_electrons = int(round(sum(upfs[s].z_valence for s in case.symbols)))
    system = {"noncolin": True, "lspinorb": True, **({"assume_isolated": "2D"} if case.sheet else {})}
    text = pw_input(case.symbols, positions, case.cell, pseudos, case.ecut, case.mesh, pseudo_dir=pseudo_dir,
                    nbnd=n_electrons + 12, system=system)  # fmt: skip
    started = time.perf_counter()
    if not (folder / "vtot.dat").is_file():
        run_qe("pw.x", text, folder, "scf")
        run_qe("pp.x", pp_input(), folder, "pp")
    scf_seconds = time.perf_counter() - started
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    species = dict.fromkeys(case.symbols)
    bases = {
        upfs[s].element: generate_basis(pseudo_dir / pseudos[s], preset, j_resolved=j_resolved)
        for s in species
    }
    started = time.process_time()
    result = project(scf, read_filplot(folder / "vtot.dat"), bases, upfs)
    project_cpu = time.process_time() - started
    kpoints = np.vstack([list(case.special.values()), _random_k(case.sheet)])
    bands_folder = workdir / f"{name}_bands"
    if not (bands_folder / "out").is_dir():
        listed = "".join(" ".join(f"{x:.12f}" for x in k) + " 1\n" for k in kpoints)
        bands = re.sub(r"K_POINTS.*", f"K_POINTS crystal\n{len(kpoints)}\n{listed}", text, flags=re.S)
        shutil.copytree(folder / "out", bands_folder / "out")
        run_qe("pw.x", bands.replace("'scf'", "'bands'"), bands_folder, "bands")
    reference = read_qe_xml(bands_folder / "out" / "pwscf.save").eigenvalues_ha * HARTREE_EV
    lcao = band_energies(result.frame, kpoints)
    vbm = n_electrons - 1
    label, upper, lower, what = case.split
    row = list(case.special).index(label)

    def splitting(e: np.ndarray) -> float:
        return 1000.0 * (e[row, vbm - upper] - e[row, vbm - lower])

    errors = []
    for k in range(len(kpoints)):
        shifted_ref, shifted = reference[k] - reference[:, vbm].max(), lcao[k] - lcao[:, vbm].max()
        window = shifted_ref[: vbm + 1] > -3.0
        errors.extend(np.abs(shifted[: vbm + 1] - shifted_ref[: vbm + 1])[window])
    return {
        "material": name, "what": what, "pw": splitting(reference), "lcao": splitting(lcao),
        "valence_mae_meV": 1000.0 * float(np.mean(errors)), "scf_s": scf_seconds,
        "project_cpu_s": project_cpu, "sum_tr_ds_error": result.checks["sum_tr_ds_error"],
        "parities": (parities(result.frame, bands_folder, n_electrons, case.special)
                     if "G" in case.special else None),
    }  # fmt: skip


def signs(values) -> str:
    """'+-?' for parities (or their products) +1, -1 and unknown."""
    return "".join("?" if v is None else "+" if v > 0 else "-" for v in values)


def parities(frame: Frame, bands_folder: Path, n_electrons: int, special: dict) -> dict | None:
    """Parities at Gamma of the two highest valence and two lowest conduction Kramers pairs: LCAO with and
    without spin-orbit coupling, and pw.x's (bands.x lsym, run in the bands folder whose first k-points are
    the special ones, Gamma first); the products delta of the occupied pairs' parities at the special points,
    LCAO and pw.x. None for a crystal without inversion."""
    pairs = slice(n_electrons - 4, n_electrons + 4, 2)  # one state of each Kramers pair
    try:
        _, with_soc = inversion_parities(frame, [0, 0, 0], n_bands=n_electrons + 4)
    except BandsError:
        return None
    plain = dataclasses.replace(frame, operators=without_spin_orbit(frame.operators))
    half = n_electrons // 2  # without spin-orbit coupling each orbital state holds both spins
    _, without = inversion_parities(plain, [0, 0, 0], n_bands=half + 2)
    if not (bands_folder / "symmetry.out").is_file():
        run_qe("bands.x", bands_symmetry_input(), bands_folder, "symmetry")
    points = read_band_symmetry(bands_folder / "symmetry.out")
    reference = points[0].band_parities()
    z2 = z2_index(frame, n_electrons)  # delta at every TRIM, the special points among them
    deltas = {}
    for (label, k), point in zip(special.items(), points, strict=False):
        theirs = point.band_parities()[:n_electrons:2]
        pw = int(np.prod(theirs)) if len(theirs) == n_electrons // 2 and None not in theirs else None
        deltas[label] = (z2["delta"][tuple(float(x) for x in k)], pw)
    return {
        "lcao": signs(np.round(with_soc[pairs])),
        "pw": signs(reference[pairs]) if len(reference) >= n_electrons + 4 else "?",
        "lcao_no_soc": signs(np.round(without[half - 2 : half + 2])),
        "z2_nu0": z2["nu0"],
        "delta": deltas,
    }


def _random_k(sheet: bool) -> np.ndarray:
    k = np.random.default_rng(2).uniform(-0.5, 0.5, (4, 3))
    if sheet:
        k[:, 2] = 0.0
    return k


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("materials", nargs="*", default=["Si"], choices=sorted(CASES))
    parser.add_argument("--pseudo-dir", type=Path, default=FR_DIR)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--preset", default="DZP")
    parser.add_argument(
        "--j-resolved",
        default="off",
        choices=["off", "auto", "all"],
        help="j = l - 1/2 functions (slem basis)",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slem_soc_"))
    rows = [
        run_case(name, CASES[name], args.pseudo_dir, workdir, args.preset, args.j_resolved)
        for name in args.materials
    ]
    print(f"{'material':8} {'splitting':38} {'pw.x meV':>9} {'LCAO meV':>9} {'diff':>7} {'ratio':>6} "
          f"{'val MAE':>8} {'SCF s':>7} {'proj CPU s':>10}")  # fmt: skip
    for r in rows:
        print(f"{r['material']:8} {r['what']:38} {r['pw']:9.2f} {r['lcao']:9.2f} {r['lcao'] - r['pw']:7.2f} "
              f"{r['lcao'] / r['pw']:6.3f} {r['valence_mae_meV']:8.1f} {r['scf_s']:7.0f} "
              f"{r['project_cpu_s']:10.1f}")  # fmt: skip
    for r in rows:
        if r["parities"]:
            p = r["parities"]
            print(f"{r['material']}: Gamma parities of the valence pairs VBM-1, VBM | conduction CBM, CBM+1: "
                  f"LCAO {p['lcao'][:2]}|{p['lcao'][2:]}, pw.x {p['pw'][:2]}|{p['pw'][2:]}, "
                  f"LCAO without spin-orbit {p['lcao_no_soc'][:2]}|{p['lcao_no_soc'][2:]}; "
                  f"LCAO Z2 index nu0 = {p['z2_nu0']} (Fu-Kane, parities at the 8 TRIMs)")  # fmt: skip
            deltas = [f"{label} {signs([lcao])}/{signs([pw])}" for label, (lcao, pw) in p["delta"].items()]
            print(f"  delta (product of the occupied pairs' parities), LCAO / pw.x: {', '.join(deltas)}")
    basis = f"{args.preset}, j-resolved {args.j_resolved}"
    print(f"runs in {workdir}; valence MAE: bands within 3 eV below the VBM, VBMs aligned ({basis})")
    print(f"pw.x serial (OMP_NUM_THREADS=1); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
