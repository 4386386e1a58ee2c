"""PseudoDojo (ONCVPSP) pseudopotentials through pw.x, the basis and the projection, against pw.x bands.

The files are tests/data/pseudos/pseudodojo-nlcc (see its MANIFEST): linear radial meshes from r = 0, two
projectors per l (d projectors on Si too), nonlinear core correction on Ga, As, B and N, and semicore 3d
shells on Ga and As. Bands are compared at k-points off the SCF and projection meshes; errors after
removing the mean valence offset (a constant potential shift).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, graphene

from slem.bands import band_energies
from slem.basis.generate import generate_basis
from slem.data.dimensionality import periodic_axes
from slem.evaluate.bands import band_errors
from slem.projection.project import project
from slem.qe.inputs import pp_input, pw_input, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import read_upf
from slem.qe.xml import read_qe_xml

pytestmark = pytest.mark.slow

HARTREE_EV = 27.211386245988
DOJO = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
FILES = {"Si": "Si.upf", "Ga": "Ga-d.upf", "As": "As-d.upf", "B": "B.upf", "N": "N.upf"}
OFF_MESH = np.random.default_rng(5).uniform(0.0, 1.0, (12, 3)) + 0.013


def _run(folder: Path, atoms, ecut: float, mesh, kpts: np.ndarray, nbnd: int):
    """pw.x SCF + pp.x + DZP projection, and pw.x bands at ``kpts``: (scf, result, pw bands in eV)."""
    if shutil.which("pw.x") is None or shutil.which("pp.x") is None:
        pytest.skip("pw.x/pp.x not installed (Debian package quantum-espresso)")
    symbols, cell = atoms.get_chemical_symbols(), np.array(atoms.cell)
    pseudos = {s: FILES[s] for s in set(symbols)}
    common = {"pseudo_dir": DOJO, "system": {"ecutrho": 4 * ecut}}
    run_qe("pw.x", pw_input(symbols, atoms.positions, cell, pseudos, ecut, mesh, **common), folder, "scf")
    run_qe("pp.x", pp_input(), folder, "pp")
    shutil.copytree(folder / "out", folder / "bands" / "out")
    text = pw_input(
        symbols, atoms.positions, cell, pseudos, ecut, kpts, calculation="bands", nbnd=nbnd, **common
    )
    run_qe("pw.x", text, folder / "bands", "bands")
    reference = read_qe_xml(folder / "bands" / "out" / "pwscf.save").eigenvalues_ha * HARTREE_EV
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upfs = {label: read_upf(DOJO / name) for label, name in scf.pseudo_files.items()}
    bases = {u.element: generate_basis(u.path, "DZP") for u in upfs.values()}
    return scf, project(scf, read_filplot(folder / "vtot.dat"), bases, upfs), reference


def test_pseudodojo_si_projects_and_matches_pw_bands(tmp_path):
    atoms = bulk("Si", "diamond", a=5.431)
    scf, result, reference = _run(tmp_path, atoms, 28.0, (4, 4, 4), OFF_MESH, 12)
    assert result.frame.basis == {"Si": "2s2p1d"}
    assert abs(result.checks["sum_tr_ds_error"]) < 1e-8
    errors = band_errors(band_energies(result.frame, OFF_MESH), reference, 4, 2.0)
    print(f"PseudoDojo Si DZP vs pw.x: {errors}")
    # measured: valence 8.0 / 43 meV (mean / max), conduction to CBM + 2 eV 153 meV
    assert errors["valence_mae_meV"] < 15.0 and errors["valence_max_meV"] < 60.0
    assert errors["conduction_mae_meV"] < 200.0


def test_gaas_with_semicore_d_projects_and_matches_pw_bands(tmp_path):
    atoms = bulk("GaAs", "zincblende", a=5.653)
    # at the pseudopotentials' low cutoff hint (As: 38 Ha): at 60 Ry pw.x itself is not converged for the
    # compact 3d shells, and the comparison then measures pw.x's truncation (valence 73 meV), not the basis
    scf, result, reference = _run(tmp_path, atoms, 76.0, (4, 4, 4), OFF_MESH, 24)
    # Ga-d / As-d: the 3d is one semicore zeta, the 4d polarises the 4p (docs/basis.md)
    assert result.frame.basis == {"Ga": "2s2p2d", "As": "2s2p2d"}
    assert scf.n_electrons == 28
    assert abs(result.checks["sum_tr_ds_error"]) < 1e-8
    errors = band_errors(band_energies(result.frame, OFF_MESH), reference, 14, 2.0)
    print(f"GaAs Ga-d/As-d DZP vs pw.x: {errors}")
    # measured: valence (3d bands included) 12.5 meV mean, conduction 106 meV, gap -16 meV; before the
    # semicore-aware basis the 4d polarisation was missing and the conduction bands were 344 meV off
    assert errors["valence_mae_meV"] < 25.0
    assert errors["conduction_mae_meV"] < 150.0
    assert abs(errors["gap_error_meV"]) < 60.0
    # the frame records its semicore bands (Ga 3d + As 3d: 20 electrons), the lowest of the 14 occupied
    assert result.frame.metadata["semicore_bands"] == 10
    outer = band_errors(band_energies(result.frame, OFF_MESH), reference, 14, 2.0, n_semicore=10)
    assert outer["n_valence"] == 4 and outer["semicore_mae_meV"] >= 0.0
    assert outer["conduction_mae_meV"] < 150.0


def test_hbn_monolayer_one_k_along_the_vacuum_and_bands_vs_pw(tmp_path):
    atoms = graphene("BN", a=2.504, vacuum=7.5)
    atoms.pbc = True  # pw.x is periodic in 3D; the 15 A gap makes it a sheet
    periodic = periodic_axes(np.array(atoms.cell), atoms.positions, atoms.pbc)
    assert periodic == (True, True, False)
    kpts = OFF_MESH * np.array(periodic)  # in-plane k only: a sheet's bands do not disperse along z
    scf, result, reference = _run(tmp_path, atoms, 60.0, (6, 6, 1), kpts, 24)
    # one SCF k-point along the vacuum, and the projection mesh resolves no bond through 15 A of vacuum
    assert np.allclose(scf.kpoints_cart[:, 2], 0.0)
    assert result.checks["kmesh"][2] == 1
    assert abs(result.checks["sum_tr_ds_error"]) < 1e-8
    lcao = band_energies(result.frame, kpts)
    by_index = band_errors(lcao, reference, 4, 2.0)
    errors = band_errors(lcao, reference, 4, 2.0, matching="assignment")
    print(f"hBN DZP vs pw.x, index: {by_index}\nassignment: {errors}")
    # pw.x's nearly-free vacuum states sit among hBN's conduction bands: matched by index they are counted
    # as basis error; the assignment leaves them unmatched (docs/materials.md)
    # measured: valence 17 meV; conduction 123 meV by assignment, 521 meV by index
    assert errors["valence_mae_meV"] < 30.0
    assert errors["conduction_mae_meV"] < 180.0
    assert errors["conduction_mae_meV"] < by_index["conduction_mae_meV"]
