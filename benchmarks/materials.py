"""LCAO bands of many materials against pw.x: SCF -> basis -> projection -> bands at k off the mesh.

Usage:
    python benchmarks/materials.py --pseudo-dir DIR [--pseudo-dir DIR2 ...] [--materials GaAs,Al]
                                   [--presets DZP,TZ2P] [--workdir DIR] [--stringency low]

Each ``--pseudo-dir`` is a folder of UPF files with a PseudoDojo-style MANIFEST.txt (element, file
name, ..., optionally a last column of low/normal/high cutoff hints in Hartree); the first folder that
has an element wins, and cutoff hints are taken from whichever folder gives them. Example, with the
PseudoDojo v0.4 tables kept beside this project:
    D=../shared/pseudos/PseudoDojo-0.4-PBE-SR-standard
    python benchmarks/materials.py --pseudo-dir $D-NLCC-regenerated --pseudo-dir $D-noCC

Per material and basis preset it prints, against pw.x eigenvalues at a band path plus random k-points
(in-plane for 2D sheets), none of them on the projection's k-mesh:
- insulators: valence mean/max error (all occupied bands, after removing the mean offset), conduction
  mean error up to CBM + 2 eV, gap error; 2D sheets match conduction states by assignment (vacuum
  states of pw.x stay unmatched, aiida_slem/validation/matching.py);
- metals (smearing): mean error of the bands within +-1 eV of E_F and the LCAO Fermi level's error
  relative to the bands (the mean offset of the occupied states removed), both on pw.x's SCF k-mesh;
- projection CPU time / SCF CPU time, and sum Tr(DS) - N.
pw.x runs serially; ``--workdir`` reuses SCFs already there. Results go into docs/materials.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk, graphene, make_supercell, mx2

from slem.allocator import keep_freed_memory
from slem.bands.bloch import band_energies
from slem.basis.generate import generate_basis
from slem.data.dimensionality import mesh_from_distance, periodic_axes
from slem.evaluate.bands import band_errors
from slem.evaluate.kpoints import validation_kpoints
from slem.evaluate.metals import fermi_window_errors
from slem.evaluate.plots import band_plot
from slem.projection.project import project
from slem.qe.inputs import pp_input, pw_input, pw_seconds, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import read_upf
from slem.qe.xml import read_qe_xml
from slem.units import HARTREE_EV

PLOT_FLOOR_EV = 15.0  # band plots show the bands above E_F (or the VBM) minus this
SMEARING = {"occupations": "smearing", "smearing": "mv", "degauss": 0.02}


@dataclass(frozen=True)
class Material:
    atoms: Atoms
    metal: bool = False
    kspacing: float = 0.25  # 1/Angstrom (2 pi included), the SCF mesh
    # pw.x starting magnetisation per element: nspin=2, smeared, one pp.x potential per channel
    magnetization: dict[str, float] | None = None
    band_kpoints: tuple[int, int] = (30, 10)  # along the path, random; fewer for costly cells
    # a magnetic insulator's smearing is kept well below its gap, so that pw.x's moment is the integer one
    degauss: float = SMEARING["degauss"]


def _sheet(atoms: Atoms) -> Atoms:
    atoms.pbc = True  # pw.x is periodic in 3D; the vacuum gap makes it a sheet (slem.data.dimensionality)
    return atoms


SQRT3 = [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]


def _cri3(a: float = 6.867, vacuum: float = 8.0) -> Atoms:
    """Monolayer CrI3 (P-31m): a 1T CrI2 layer in its sqrt3 x sqrt3 cell with one Cr of three removed,
    the I planes placed for the 2.74 A Cr-I bond of the bulk crystal (unrelaxed: pw.x and LCAO see the
    same atoms, which is all the comparison needs)."""
    a0 = a / np.sqrt(3.0)
    height = np.sqrt(2.74**2 - a0**2 / 3.0)
    layer = make_supercell(mx2("CrI2", "1T", a=a0, thickness=2 * height, vacuum=vacuum), SQRT3)
    del layer[[i for i, s in enumerate(layer.get_chemical_symbols()) if s == "Cr"][0]]
    return _sheet(layer)


MATERIALS = {
    "Si": Material(bulk("Si", "diamond", a=5.431)),
    "C": Material(bulk("C", "diamond", a=3.567)),
    "SiC": Material(bulk("SiC", "zincblende", a=4.36)),
    "GaAs": Material(bulk("GaAs", "zincblende", a=5.653)),
    "GaN": Material(bulk("GaN", "wurtzite", a=3.189, c=5.185)),
    "hBN": Material(_sheet(graphene("BN", a=2.504, vacuum=8.0))),
    "graphene": Material(_sheet(graphene("C2", a=2.467, vacuum=8.0)), metal=True, kspacing=0.15),
    "MoS2": Material(_sheet(mx2("MoS2", "2H", a=3.184, thickness=3.127, vacuum=8.0))),
    "Al": Material(bulk("Al", "fcc", a=4.04), metal=True, kspacing=0.15),
    "Cu": Material(bulk("Cu", "fcc", a=3.615), metal=True, kspacing=0.15),
    "HfO2": Material(bulk("HfO2", "fluorite", a=5.08)),
    "Fe": Material(bulk("Fe", "bcc", a=2.83), metal=True, kspacing=0.25, magnetization={"Fe": 0.4}),
    "Ni": Material(bulk("Ni", "fcc", a=3.52), metal=True, kspacing=0.25, magnetization={"Ni": 0.4}),
    "CrI3": Material(_cri3(), kspacing=0.3, magnetization={"Cr": 0.5}, band_kpoints=(12, 6), degauss=0.005),
}


def read_manifests(folders: list[Path]) -> tuple[dict[str, Path], dict[str, list[float]]]:
    """element -> UPF path (first folder wins), element -> [low, normal, high] cutoff hints (Ha)."""
    files: dict[str, Path] = {}
    hints: dict[str, list[float]] = {}
    for folder in folders:
        manifest = folder / "MANIFEST.txt"
        if not manifest.is_file():
            raise SystemExit(f"{manifest} not found: --pseudo-dir needs a PseudoDojo-style MANIFEST.txt")
        for line in manifest.read_text().splitlines():
            fields = line.split()
            if not fields or line.startswith("#") or not fields[1].lower().endswith(".upf"):
                continue
            element, name = fields[0], fields[1]
            if element not in files and (folder / name).is_file():
                files[element] = (folder / name).resolve()
            if "/" in fields[-1] and element not in hints:
                hints[element] = [float(x) for x in fields[-1].split("/")]
    return files, hints


def potential_files(material: Material) -> list[str]:
    """pp.x's local potential files of a material's SCF: one, or one per spin channel."""
    return ["v_up.dat", "v_down.dat"] if material.magnetization else ["vtot.dat"]


def spin_settings(material: Material) -> dict:
    """pw.x &system entries of a spin-polarised SCF (species in first-appearance order, as pw_input)."""
    if not material.magnetization:
        return SMEARING if material.metal else {}
    species = list(dict.fromkeys(material.atoms.get_chemical_symbols()))
    start = {
        f"starting_magnetization({i + 1})": material.magnetization[s]
        for i, s in enumerate(species)
        if s in material.magnetization
    }
    return {**SMEARING, "degauss": material.degauss, "nspin": 2, **start}


def run_scf(name: str, material: Material, files, ecut: float, mesh, workdir: Path) -> Path:
    folder = workdir / name
    atoms = material.atoms
    symbols = atoms.get_chemical_symbols()
    if not (folder / potential_files(material)[-1]).is_file():
        pseudos = {s: files[s].name for s in set(symbols)}
        pseudo_dir = {files[s].parent for s in set(symbols)}
        if len(pseudo_dir) != 1:  # pw.x takes one pseudo_dir: link the files into the run folder
            (folder / "pseudo").mkdir(parents=True, exist_ok=True)
            for s in set(symbols):
                link = folder / "pseudo" / files[s].name
                if not link.exists():
                    link.symlink_to(files[s].resolve())
            pseudo_dir = {folder / "pseudo"}
        text = pw_input(
            symbols,
            atoms.positions,
            np.array(atoms.cell),
            pseudos,
            ecut,
            mesh,
            pseudo_dir=pseudo_dir.pop(),
            system={**spin_settings(material), "ecutrho": 4 * ecut},
        )
        run_qe("pw.x", text, folder, "scf")
        components = [1, 2] if material.magnetization else [None]  # pp.x spin_component: up, down
        for spin, filplot in zip(components, potential_files(material), strict=True):
            run_qe("pp.x", pp_input(filplot=filplot, spin_component=spin), folder, filplot.split(".")[0])
    return folder


def pw_bands(folder: Path, kpts: np.ndarray, nbnd: int) -> np.ndarray:
    """pw.x eigenvalues (eV) at fractional ``kpts``, on a copy of the SCF's output."""
    import shutil

    target = folder / f"bands_{nbnd}"
    xml = target / "out" / "pwscf.save" / "data-file-schema.xml"
    if not xml.is_file():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder / "out", target / "out")
        text = (folder / "scf.in").read_text()
        head, _, _ = text.partition("K_POINTS")
        head = head.replace("calculation = 'scf'", "calculation = 'bands'")
        head = head.replace("&system\n", f"&system\n  nbnd = {nbnd}\n", 1)
        head = head.replace("&electrons\n", "&electrons\n  diago_full_acc = .true.\n", 1)
        kblock = f"K_POINTS crystal\n{len(kpts)}\n" + "".join(
            " ".join(f"{x:.12f}" for x in k) + " 1\n" for k in kpts
        )
        run_qe("pw.x", head + kblock, target, "bands")
    return read_qe_xml(xml).spin_eigenvalues_ha() * HARTREE_EV  # (n_spin, nk, nb)


def plot_path(
    plot_dir: Path | None, stem: str, ks: dict, lcao: np.ndarray, pw: np.ndarray, zero: float
) -> None:
    """LCAO bands (lines) and pw.x's (dots) at the path's k-points, both from ``zero`` (eV)."""
    n = ks["n_path"]
    if plot_dir is None or n == 0:
        return
    plot_dir.mkdir(parents=True, exist_ok=True)
    # semicore bands (Fe 3s3p at -50 to -90 eV) would squeeze the valence into a sliver of the window
    curves = {}
    for label, bands in (("pw.x", pw[:n] - zero), ("LCAO reference", lcao[:n] - zero)):
        curves[label] = bands[:, bands.max(axis=0) > -PLOT_FLOOR_EV]
    band_plot(
        plot_dir / f"bands_{stem}.png", ks, curves, 0, f"{stem}: projected LCAO vs pw.x", zero_label="E_F"
    )


def evaluate(
    name: str, material: Material, files, hints, presets, stringency: str, workdir: Path, plot_dir=None
) -> list:
    symbols = sorted(set(material.atoms.get_chemical_symbols()))
    missing = [s for s in symbols if s not in files]
    if missing:
        raise SystemExit(f"{name}: no UPF for {', '.join(missing)} in the --pseudo-dir folders")
    column = {"low": 0, "normal": 1, "high": 2}[stringency]
    ecut = 2.0 * max(hints[s][column] for s in symbols)  # Ry
    atoms = material.atoms
    periodic = periodic_axes(np.array(atoms.cell), atoms.positions, atoms.pbc)
    scf_mesh = mesh_from_distance(atoms.cell, material.kspacing, periodic)
    started = time.perf_counter()
    folder = run_scf(name, material, files, ecut, scf_mesh, workdir)
    scf_cpu, _ = pw_seconds(folder / "scf.out")
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    potentials = [read_filplot(folder / f) for f in potential_files(material)]
    upfs = {label: read_upf(files[label]) for label in scf.pseudo_files}
    n_path, n_random = material.band_kpoints
    cell = np.array(atoms.cell)
    ks = validation_kpoints(cell, n_path, n_random, 0, positions=atoms.positions, pbc=atoms.pbc)
    kpts = np.array(ks["kpoints"])
    two_d = not all(ks["periodic_axes"])
    rows = []
    for preset in presets:
        bases = {u.element: generate_basis(u.path, preset) for u in upfs.values()}
        # a metal's D (and E_F) on pw.x's own SCF mesh, so the E_F comparison carries no k-sampling error
        # a magnet's D on pw.x's mesh too: its moment moves with the k-mesh more than with the basis
        on_mesh = material.metal or material.magnetization
        result = project(scf, potentials, bases, upfs, kmesh=scf_mesh if on_mesh else None)
        n_val = int(np.ceil((scf.n_electrons + abs(scf.magnetization_total or 0.0)) / 2))
        reference = pw_bands(folder, kpts, max(n_val + 12, int(1.3 * n_val) + 8))
        row = {
            "material": name,
            "preset": preset,
            "atoms": len(atoms),
            "ecut_ry": ecut,
            "metal": material.metal,
            "two_d": two_d,
            "shells": {e: b.shells for e, b in bases.items()},
            "scf_cpu_s": scf_cpu,
            "project_cpu_s": result.checks["cpu_seconds"],
            "tr_ds_error": result.checks["sum_tr_ds_error"],
            "wall_s": time.perf_counter() - started,
        }
        if material.magnetization:
            rows += spin_rows(row, result, ks, reference, material.metal, plot_dir)
            continue
        lcao = band_energies(result.frame, kpts)
        reference = reference[0]
        qe_fermi = result.frame.metadata["qe_fermi_energy_ev"]
        zero = qe_fermi if material.metal else reference[:, n_val - 1].max()
        plot_path(plot_dir, f"{name}_{preset}", ks, lcao, reference, zero)
        if material.metal:
            # the window sits at pw.x's Fermi level; pw.x may hold states the basis lacks (assignment)
            row.update(fermi_window_errors(lcao, reference, qe_fermi, 1.0, matching="assignment"))
            # against the bands: the uniform offset between LCAO and pw.x bands is removed, as for the window
            shift = 1000.0 * (result.frame.metadata["fermi_energy_ev"] - qe_fermi)
            row["fermi_error_meV"] = shift - row["offset_meV"]
        else:
            matching = "assignment" if two_d else "index"
            row.update(band_errors(lcao, reference, n_val, 2.0, matching=matching))
            # the same without the semicore bands (Ga/As 3d, Hf 5s5p, Mo 4s4p: docs/basis.md), which lie
            # 15-60 eV below the gap and would otherwise dominate the valence mean of semicore materials
            n_sc = result.frame.metadata["semicore_bands"]
            if n_sc:
                inner = band_errors(lcao, reference, n_val, 2.0, matching=matching, n_semicore=n_sc)
                row["valence_no_semicore_mae_meV"] = inner["valence_mae_meV"]
                row["valence_no_semicore_max_meV"] = inner["valence_max_meV"]
        rows.append(row)
    return rows


def spin_rows(row: dict, result, ks: dict, reference: np.ndarray, metal: bool, plot_dir=None) -> list[dict]:
    """One row per spin channel: a magnetic metal's bands within +-1 eV of E_F, a magnetic insulator's
    occupied and conduction bands of that channel; both carry the moment from D against pw.x's."""
    meta = result.frame.metadata
    moment = {
        "magnetization_mub": result.checks["magnetization_mub"],
        "magnetization_error_mub": result.checks["magnetization_error_mub"],
    }
    rows = []
    for channel, pw in zip(("up", "down"), reference, strict=True):
        lcao = band_energies(result.frame, np.array(ks["kpoints"]), hamiltonian=f"H_{channel}")
        plot_path(
            plot_dir, f"{row['material']}_{row['preset']}_{channel}", ks, lcao, pw, meta["qe_fermi_energy_ev"]
        )
        new = {**row, **moment, "material": f"{row['material']} {channel}"}
        matching = "assignment" if not all(ks["periodic_axes"]) else "index"
        counts = np.count_nonzero(pw < meta["qe_fermi_energy_ev"], axis=1)
        if metal or counts.min() != counts.max():
            new.update(fermi_window_errors(lcao, pw, meta["qe_fermi_energy_ev"], 1.0, matching="assignment"))
            shift = 1000.0 * (meta["fermi_energy_ev"] - meta["qe_fermi_energy_ev"])
            new["fermi_error_meV"] = shift - new["offset_meV"]
        else:
            # a gapped channel: the same occupied count at every k
            new.update(band_errors(lcao, pw, int(counts[0]), 2.0, matching=matching))
        rows.append(new)
    return rows


def _fmt(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) and value is not None else "-"


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'material':10}{'basis':6}{'ecut':>5} {'valence':>13} {'w/o semicore':>13} {'cond.':>7} "
        f"{'gap err':>8} {'E_F+-1eV':>9} {'E_F err':>8} {'proj/SCF':>9} {'Tr(DS)-N':>9} {'dM (muB)':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        valence = (
            f"{r['valence_mae_meV']:6.1f}/{r['valence_max_meV']:6.1f}" if "valence_mae_meV" in r else "-"
        )
        inner = r.get("valence_no_semicore_mae_meV")
        inner = f"{inner:6.1f}/{r['valence_no_semicore_max_meV']:6.1f}" if inner is not None else "-"
        print(
            f"{r['material']:10}{r['preset']:6}{r['ecut_ry']:5.0f} {valence:>13} {inner:>13} "
            f"{_fmt(r.get('conduction_mae_meV'), '7.1f'):>7} {_fmt(r.get('gap_error_meV'), '8.1f'):>8} "
            f"{_fmt(r.get('fermi_window_mae_meV'), '9.1f'):>9} {_fmt(r.get('fermi_error_meV'), '8.1f'):>8} "
            f"{r['project_cpu_s'] / r['scf_cpu_s']:9.2f} {r['tr_ds_error']:9.1e} "
            f"{_fmt(r.get('magnetization_error_mub'), '9.4f'):>9}"
        )
    print(
        "errors in meV vs pw.x at k off the projection mesh; valence: mean/max over all occupied bands, "
        "and without the semicore bands"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pseudo-dir", type=Path, action="append", required=True)
    parser.add_argument("--materials", default=",".join(MATERIALS))
    parser.add_argument("--presets", default="DZP,TZ2P")
    parser.add_argument("--stringency", choices=("low", "normal", "high"), default="low")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows as JSON here.")
    parser.add_argument("--plot", type=Path, default=None, help="Band plots along the path into this folder.")
    args = parser.parse_args()
    keep_freed_memory()  # as `slem project` does
    files, hints = read_manifests(args.pseudo_dir)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="slem-materials-"))
    rows = []
    for name in args.materials.split(","):
        if name not in MATERIALS:
            raise SystemExit(f"unknown material {name!r}; choose from {', '.join(MATERIALS)}")
        presets = args.presets.split(",")
        new = evaluate(name, MATERIALS[name], files, hints, presets, args.stringency, workdir, args.plot)
        for row in new:
            print(json.dumps(row, default=str), flush=True)
        rows += new
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
