"""Spin-orbit coupling (pw.x noncolin + lspinorb, fully relativistic UPF): H, H_so_a, S, D, D_so_a.

Diamond Si with the official PseudoDojo FR Si of tests/data (projectors per (l, j)), 40 Ry. Si's valence
splitting at Gamma (about 48 meV) is small, but pw.x resolves it to 0.01 meV, so it checks the sign and size
of the spin-orbit operator as well as a heavy element would, at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from test_projection_rotation import _atom_rotation, random_rotation
from test_projection_spin import _train_tiny

from slem.bands import band_energies
from slem.bands.bloch import BandsError
from slem.bands.parity import inversion_parities, z2_index
from slem.basis.generate import generate_basis
from slem.data.frame import FrameFormatError, read_frames, write_frames
from slem.data.operators import spin_orbit_names, without_spin_orbit
from slem.evaluate.splitting import splitting_entry, splitting_levels
from slem.projection.galerkin import GalerkinProjector, species_data
from slem.projection.project import ProjectionError, project
from slem.qe.band_symmetry import read_band_symmetry
from slem.qe.inputs import bands_symmetry_input, pp_input, pw_input, run_qe
from slem.qe.potential import read_filplot
from slem.qe.upf import UpfError, read_upf
from slem.qe.xml import QeXmlError, read_qe_xml

pytestmark = pytest.mark.slow

HARTREE_EV = 27.211386245988
RYDBERG_EV = HARTREE_EV / 2
PSEUDO_DIR = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-fr"
A = 5.43
CELL = 0.5 * A * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
POSITIONS = np.array([[0.0, 0.0, 0.0], [0.25 * A] * 3])
ECUT = 40.0
SPIN_ORBIT = {"noncolin": True, "lspinorb": True}
K_BANDS = np.vstack([[[0, 0, 0], [0.5, 0, 0.5]], np.random.default_rng(3).uniform(-0.5, 0.5, (3, 3))])


def _scf(folder: Path, rotation: np.ndarray | None = None) -> None:
    q = np.eye(3) if rotation is None else rotation
    text = pw_input(
        ["Si", "Si"], POSITIONS @ q.T, CELL @ q.T, {"Si": "Si.upf"}, ECUT, (4, 4, 4),
        pseudo_dir=PSEUDO_DIR, nbnd=16, system=SPIN_ORBIT,
    )  # fmt: skip
    run_qe("pw.x", text, folder, "scf")
    run_qe("pp.x", pp_input(), folder, "pp")


def _project(folder: Path, basis):
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upfs = {label: read_upf(PSEUDO_DIR / name, spin_orbit=True) for label, name in scf.pseudo_files.items()}
    return project(scf, read_filplot(folder / "vtot.dat"), {"Si": basis}, upfs)


@pytest.fixture(scope="module")
def silicon(tmp_path_factory):
    if shutil.which("pw.x") is None or shutil.which("pp.x") is None:
        pytest.skip("pw.x/pp.x not installed (Debian package quantum-espresso)")
    folder = tmp_path_factory.mktemp("si_soc")
    _scf(folder)
    basis = generate_basis(PSEUDO_DIR / "Si.upf", "DZP")
    result = _project(folder, basis)
    bands_folder = folder.parent / "si_soc_bands"
    shutil.copytree(folder, bands_folder)
    text = (folder / "scf.in").read_text().replace("'scf'", "'bands'")
    listed = "".join(" ".join(f"{x:.12f}" for x in k) + " 1\n" for k in K_BANDS)
    run_qe("pw.x", re.sub(r"K_POINTS.*", f"K_POINTS crystal\n{len(K_BANDS)}\n{listed}", text, flags=re.S),
           bands_folder, "bands")  # fmt: skip
    reference = read_qe_xml(bands_folder / "out" / "pwscf.save").eigenvalues_ha * HARTREE_EV
    return folder, basis, result, reference


def test_plane_wave_spin_orbit_hamiltonian_is_pw_x(silicon):
    """The FR file's j-resolved projectors, as slem applies them (j-average (x) 1 + spin-orbit (x) L.sigma),
    reproduce pw.x's spinor eigenvalues on its own plane waves; without the spin-orbit part they do not."""
    folder, *_ = silicon
    scf = read_qe_xml(folder / "out" / "pwscf.save")
    upf = read_upf(PSEUDO_DIR / "Si.upf", spin_orbit=True)
    ecut = 2 * scf.ecutwfc_ha
    species = {"Si": species_data(None, upf, np.sqrt(ecut) + 0.1)}
    potential = read_filplot(folder / "vtot.dat").values_ry
    proj = GalerkinProjector(scf.cell_bohr, scf.positions_bohr, scf.symbols, potential, ecut, species)
    worst, without = 0.0, 0.0
    for k, reference in list(zip(scf.kpoints_cart, scf.eigenvalues_ha * HARTREE_EV, strict=True))[:3]:
        eigenvalues = np.linalg.eigvalsh(proj.plane_wave_spinor_hamiltonian(k))[: len(reference)] * RYDBERG_EV
        worst = max(worst, np.abs(eigenvalues - reference).max())
        scalar = np.repeat(np.linalg.eigvalsh(proj.plane_wave_hamiltonian(k)), 2)[: len(reference)]
        scalar = scalar * RYDBERG_EV
        without = max(without, np.abs(scalar - reference).max())
    assert worst < 5e-4  # eV; measured 6e-5
    assert without > 0.02


def test_sum_rules_and_the_time_reversal_form(silicon, tmp_path):
    folder, basis, result, _ = silicon
    frame, checks = result.frame, result.checks
    assert checks["spin_orbit"] and checks["n_spin"] == 1
    assert abs(checks["sum_tr_ds"] - 8.0) < 1e-8
    assert abs(checks["sum_tr_dh_ev"] - checks["band_energy_ev"]) < 1e-6
    assert basis.upf_md5 == read_upf(PSEUDO_DIR / "Si.upf", spin_orbit=True).md5
    # H_so and D_so are antisymmetric under (i, j, R) -> (j, i, -R): the spinor H and D are hermitian
    lookup = frame.pair_lookup()
    for name in spin_orbit_names("H") + spin_orbit_names("D"):
        for (i, j, *r), p in lookup.items():
            partner = lookup[(j, i, *(-x for x in r))]
            assert np.allclose(frame.block(name, p), -frame.block(name, partner).T, atol=1e-12)
    onsite = frame.block("H_so_z", lookup[(0, 0, 0, 0, 0)])
    assert 1e-3 < np.abs(onsite).max() < 0.1  # eV: Si 3p spin-orbit, tens of meV
    write_frames(tmp_path / "soc.h5", [frame])
    again = read_frames(tmp_path / "soc.h5")[0]
    assert set(again.operators) == set(frame.operators)
    assert np.array_equal(again.operators["D_so_y"], frame.operators["D_so_y"])
    # a DeePTB folder would keep only the j-averaged H: refused, nothing written
    from click.testing import CliRunner

    from slem.cli.export import export

    out = tmp_path / "dptb"
    refused = CliRunner().invoke(export, [str(tmp_path / "soc.h5"), "--format", "deeptb", "-o", str(out)])
    assert refused.exit_code != 0 and "spin-orbit parts" in refused.output
    assert "--format deeph" in refused.output
    assert not out.exists()


def test_deeph_spinful_export_is_what_deeph_diagonalises_and_reads_back(silicon, tmp_path):
    """isspinful DeepH folder: spinor blocks spin-major per atom, S expanded to S (x) 1 as DeepH-pack's
    sparse_calc.jl does; its H(k) has our spinor bands, and reading it back restores every operator."""
    import json

    import h5py

    from slem.data.deeph import read_deeph, write_deeph

    *_, result, _ = silicon
    frame = result.frame
    write_deeph([frame], tmp_path / "deeph")
    folder = tmp_path / "deeph" / "0"
    assert json.loads((folder / "info.json").read_text())["isspinful"] is True
    k = np.array([0.21, -0.13, 0.37])
    n = int(frame.orbitals_per_atom[0])  # both atoms are Si
    h_k = np.zeros((4 * n, 4 * n), dtype=complex)
    s_k = np.zeros_like(h_k)
    with h5py.File(folder / "hamiltonians.h5") as hs, h5py.File(folder / "overlaps.h5") as ss:
        for key in hs:
            rx, ry, rz, i, j = json.loads(key)
            phase = np.exp(2j * np.pi * (k @ np.array([rx, ry, rz])))
            rows, cols = slice(2 * n * (i - 1), 2 * n * i), slice(2 * n * (j - 1), 2 * n * j)
            h_k[rows, cols] += phase * hs[key][()]
            if key in ss:
                s_k[rows, cols] += phase * np.kron(np.eye(2), ss[key][()])
    theirs = scipy.linalg.eigh(h_k, s_k, eigvals_only=True)
    ours = band_energies(frame, k[None])[0]
    assert np.abs(theirs - ours).max() < 1e-8
    back = read_deeph(tmp_path / "deeph")[0]
    assert set(back.operators) == set(frame.operators)
    for name in frame.operators:
        mine, read = frame.blocks(name), back.blocks(name)
        assert max(float(np.abs(mine[key] - read[key]).max()) for key in mine) < 1e-12, name
    # a magnetic (time-reversal-breaking) spinor block, here an exchange field along z, is refused
    with h5py.File(folder / "hamiltonians.h5", "r+") as hs:
        key = next(iter(hs))
        block = hs[key][()]
        del hs[key]
        hs[key] = block + 0.1 * np.kron(np.diag([1.0, -1.0]), np.eye(len(block) // 2))
    with pytest.raises(FrameFormatError, match="breaks time reversal"):
        read_deeph(tmp_path / "deeph")


def test_spinor_bands_match_pw_x(silicon):
    *_, result, reference = silicon
    energies = band_energies(result.frame, K_BANDS)
    valence = slice(0, 8)
    mean = np.abs(energies[:, valence] - reference[:, valence]).mean()
    split_pw = reference[0, 7] - reference[0, 3]  # Gamma: the j=3/2 quadruplet over the j=1/2 doublet
    split = energies[0, 7] - energies[0, 3]
    print(f"Si Gamma splitting: LCAO {split * 1000:.2f} meV, pw.x {split_pw * 1000:.2f} meV; mean {mean:.4f}")
    assert 0.04 < split_pw < 0.056
    assert abs(split - split_pw) < 1e-3
    assert mean < 0.08  # eV; the DZP basis error of Si's valence bands (measured 0.043)
    # the validation's splitting finds the same levels on its own: the VBM k-point, the quartet's top band
    # and the doublet below it, and reads pw.x's bands at the same indices
    levels = splitting_levels(energies, 8)
    entry = splitting_entry(energies, energies, levels, np.asarray(K_BANDS), pw=reference)
    assert entry["kpoint"] == [0.0, 0.0, 0.0] and entry["bands"] == [3, 7]
    assert entry["reference_meV"] == pytest.approx(split * 1000) and entry["error_meV"] == 0
    assert entry["pw_meV"] == pytest.approx(split_pw * 1000)
    assert abs(entry["lcao_vs_pw_meV"]) < 1.0


def test_spinor_gamma_parities_are_pw_x_double_group_irreps(silicon):
    """The spinor states at Gamma carry the parities pw.x's bands.x gives its own (double-group irreps G_6+,
    G_7+, G_8+ below the gap, G_6-, G_8- above): inversion acts on orbitals alone, and spin-orbit coupling
    splits levels without mixing parities."""
    folder, *_, result, _ = silicon
    bands_folder = folder.parent / "si_soc_bands"  # its first k-point is Gamma
    run_qe("bands.x", bands_symmetry_input(), bands_folder, "symmetry")
    gamma = read_band_symmetry(bands_folder / "symmetry.out")[0]
    assert gamma.kpoint == (0.0, 0.0, 0.0) and "double" in (bands_folder / "symmetry.out").read_text()
    reference = gamma.band_parities()
    assert reference[:8] == [1] * 8 and reference[8:14] == [-1] * 6, reference
    _, parities = inversion_parities(result.frame, [0, 0, 0], n_bands=len(reference))
    assert np.allclose(np.abs(parities), 1.0, atol=1e-6)
    assert np.round(parities).astype(int).tolist()[: len(reference)] == reference


def test_silicon_is_z2_trivial_and_the_index_needs_spinors(silicon):
    """Fu and Kane's index from the 8 valence spinor states at the 8 TRIMs: diamond Si is trivial (nu0 = 0).
    A frame without its spin-orbit parts is refused. Bi2Se3's nu0 = 1 is in docs/spin-orbit.md."""
    *_, result, _ = silicon
    index = z2_index(result.frame, 8)
    assert len(index["delta"]) == 8 and index["nu0"] == 0
    plain = dataclasses.replace(result.frame, operators=without_spin_orbit(result.frame.operators))
    with pytest.raises(BandsError, match="needs a spin-orbit frame"):
        z2_index(plain, 8)


def test_spin_orbit_parts_rotate_as_pseudovectors(silicon, tmp_path):
    """Rotating cell and atoms: H_so_a' = sum_b Q_ab D H_so_b D^T and likewise for D_so."""
    _, basis, result, _ = silicon
    rotation = random_rotation(7)
    _scf(tmp_path, rotation)
    original, rotated = result.frame, _project(tmp_path, basis).frame
    d = _atom_rotation(basis.shells, rotation)
    lookup = rotated.pair_lookup()
    worst = {"H": 0.0, "D": 0.0}
    for key, p in original.pair_lookup().items():
        q = lookup[key]
        for base in worst:
            parts = np.stack([original.block(n, p) for n in spin_orbit_names(base)])
            expected = np.einsum("ab,bij->aij", rotation, d @ parts @ d.T)
            got = np.stack([rotated.block(n, q) for n in spin_orbit_names(base)])
            worst[base] = max(worst[base], np.abs(got - expected).max())
    print(f"spin-orbit rotation covariance: H_so {worst['H'] * 1000:.2e} meV, D_so {worst['D']:.1e}")
    assert worst["H"] < 1e-6  # eV: two-centre tables only, no grid quadrature
    assert worst["D"] < 1e-4


def test_fully_relativistic_inputs_slem_cannot_use_are_refused(silicon, tmp_path):
    folder, basis, *_ = silicon
    with pytest.raises(UpfError, match="fully relativistic"):
        read_upf(PSEUDO_DIR / "Si.upf")
    source = (folder / "out" / "pwscf.save" / "data-file-schema.xml").read_text()

    def variant(name: str, **tags: str) -> Path:
        tree = ET.fromstring(source)
        for element in tree.iter():
            for tag, text in tags.items():
                if element.tag.endswith(tag):
                    element.text = text
        (tmp_path / name).write_text(ET.tostring(tree, encoding="unicode"))
        return tmp_path / name

    with pytest.raises(QeXmlError, match="without spin-orbit"):
        read_qe_xml(variant("nc.xml", spinorbit="false"))
    with pytest.raises(QeXmlError, match="with magnetisation"):
        read_qe_xml(variant("mag.xml", do_magnetization="true"))
    scalar = read_qe_xml(variant("sr.xml", spinorbit="false", noncolin="false"))
    upfs = {"Si": read_upf(PSEUDO_DIR / "Si.upf", spin_orbit=True)}
    with pytest.raises(ProjectionError, match="without lspinorb.*lspinorb=.true."):
        project(scalar, read_filplot(folder / "vtot.dat"), {"Si": basis}, upfs)


def _train(tmp_path: Path, frame, operators: list[str], steps: int) -> Path:
    tmp_path.mkdir(exist_ok=True)
    write_frames(tmp_path / "si.h5", [frame])
    return _train_tiny(tmp_path, operators, steps, dataset="si.h5", r_cut={"Si": 4.3})


def test_spin_orbit_model_trains_predicts_and_is_refused_without_its_parts(silicon, tmp_path):
    import json

    from slem.predict import predict_frames
    from slem.train.config import ConfigError

    *_, result, _ = silicon
    run = _train(tmp_path, result.frame, ["H", "S", *spin_orbit_names("H")], 40)
    curve = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [row["H_so_x"] for row in curve if row["kind"] == "train"]
    assert losses[-1] < 0.7 * losses[0]
    predicted = predict_frames(run / "model.pt", [result.frame])[0]
    assert set(spin_orbit_names("H")) <= set(predicted.operators)
    lookup = predicted.pair_lookup()
    for (i, j, *r), p in lookup.items():
        partner = lookup[(j, i, *(-x for x in r))]
        assert np.allclose(predicted.block("H_so_y", p), -predicted.block("H_so_y", partner).T, atol=1e-6)
    with pytest.raises(ConfigError, match="H_so_x"):
        _train(tmp_path / "h_only", result.frame, ["H", "S"], 1)


def test_validation_compares_spinor_bands(silicon, tmp_path):
    """slem validate diagonalises the spinor H: dropping the spin-orbit parts of the reference moves the
    j=1/2 doublet at Gamma down by 2/3 and the gap by 1/3 of the splitting (48 meV)."""
    from slem.cli.validate import run_validation

    *_, result, _ = silicon
    reference = result.frame
    write_frames(tmp_path / "ref.h5", [reference])
    without = read_frames(tmp_path / "ref.h5")[0]
    for name in spin_orbit_names("H"):
        without.operators[name] = np.zeros_like(without.operators[name])
    write_frames(tmp_path / "without.h5", [without])

    def validate(prediction: str, name: str) -> dict:
        # no pw.x bands, default settings, splits and thresholds
        return run_validation(str(tmp_path / prediction), str(tmp_path / "ref.h5"), tmp_path / f"{name}.json",
                              tmp_path / name, {}, {}, {}, {})  # fmt: skip

    same = validate("ref.h5", "a")
    entry = next(iter(same["bands"].values()))
    assert entry["spin_orbit"] and entry["n_valence"] == 8
    assert entry["vs_lcao"]["all"]["valence_max_meV"] < 1e-6
    report = validate("without.h5", "b")
    errors = next(iter(report["bands"].values()))["vs_lcao"]["all"]
    assert 25 < errors["valence_max_meV"] < 40
    assert 10 < errors["gap_error_meV"] < 22
    # the splitting at the VBM (Gamma): exact for the reference itself, and all of it spin-orbit (the six
    # levels of Si's scalar Gamma_25' are one); gone without the spin-orbit parts
    kept = entry["valence_splitting"]
    assert 44 < kept["reference_meV"] < 52 and abs(kept["error_meV"]) < 1e-6 and kept["bands"] == [3, 7]
    assert kept["reference_spin_orbit_part_meV"] == pytest.approx(kept["reference_meV"], abs=1e-6)
    lost = next(iter(report["bands"].values()))["valence_splitting"]
    assert abs(lost["predicted_meV"]) < 1e-3 and abs(lost["predicted_spin_orbit_part_meV"]) < 1e-3
    summary = report["summary"]
    assert summary["vbm_splitting_error_vs_lcao_meV"] == pytest.approx(kept["reference_meV"], abs=1e-3)
    so_part = summary["vbm_splitting_error_so_part_vs_lcao_meV"]
    assert so_part == pytest.approx(kept["reference_meV"], abs=1e-3)


def test_smeared_spin_orbit_metal_solves_one_fermi_level_over_spinor_bands(tmp_path):
    """fcc Al with the FR PseudoDojo Al, cold smearing: one electron per spinor band, E_F solved on the LCAO
    spinor bands with pw.x's smearing on pw.x's own mesh (as the scalar Al test of test_projection_metals)."""
    if shutil.which("pw.x") is None or shutil.which("pp.x") is None:
        pytest.skip("pw.x/pp.x not installed (Debian package quantum-espresso)")
    mesh = (14, 14, 14)
    smeared = {**SPIN_ORBIT, "occupations": "smearing", "smearing": "mv", "degauss": 0.02}
    cell = 0.5 * 4.04 * (np.ones((3, 3)) - np.eye(3))
    text = pw_input(["Al"], np.zeros((1, 3)), cell, {"Al": "Al.upf"}, 30.0, mesh, pseudo_dir=PSEUDO_DIR,
                    system=smeared)  # fmt: skip
    run_qe("pw.x", text, tmp_path, "scf")
    run_qe("pp.x", pp_input(), tmp_path, "pp")
    scf = read_qe_xml(tmp_path / "out" / "pwscf.save")
    upfs = {"Al": read_upf(PSEUDO_DIR / "Al.upf", spin_orbit=True)}
    basis = {"Al": generate_basis(PSEUDO_DIR / "Al.upf", "DZP")}
    checks = project(scf, read_filplot(tmp_path / "vtot.dat"), basis, upfs, kmesh=mesh).checks
    print(f"Al FR: E_F - E_F(pw.x) {checks['fermi_energy_difference_ev']:+.4f} eV")
    assert checks["spin_orbit"] and abs(checks["sum_tr_ds"] - 3.0) < 1e-8
    assert abs(checks["sum_tr_dh_ev"] - checks["band_energy_ev"]) < 1e-6
    assert checks["top_band_occupation"] < 1e-3
    assert abs(checks["fermi_energy_difference_ev"]) < 0.1  # the scalar DZP Al: +0.076 eV


def test_sparse_spinor_matrices_and_the_spectrum(silicon):
    """The sparse H(k), S(k) of a spin-orbit frame are its spinor ones (slem bands --solver sparse); slem
    spectrum solves that spinor pair, one electron per state, with its nearly singular DZP overlap factorized
    (a real S(k) beside the complex spinor H at Gamma)."""
    import scipy.linalg

    from slem.bands.bloch import bloch_matrix_sparse, operator_pair
    from slem.spectrum import frame_spectrum

    *_, result, _ = silicon
    k = np.array([0.13, -0.2, 0.31])
    h, s = operator_pair(result.frame, k[None])
    assert h.shape[1] == 2 * result.frame.orbitals_per_atom.sum()
    assert np.abs(bloch_matrix_sparse(result.frame, "H", k).toarray() - h[0]).max() < 1e-12
    assert np.abs(bloch_matrix_sparse(result.frame, "S", k).toarray() - s[0]).max() < 1e-12
    spectrum = frame_spectrum(result.frame, n_moments=64, n_vectors=2, overlap_solver="lu")
    h, s = operator_pair(result.frame, np.zeros((1, 3)))
    dense = scipy.linalg.eigh(h[0], s[0], eigvals_only=True)
    n = int(round(spectrum["n_electrons"]))  # one electron per spinor state: the HOMO is state n
    assert spectrum["spinor"] and spectrum["edges"]["n_occupied_states"] == n
    assert abs(spectrum["edges"]["homo_eV"] - dense[n - 1]) < 1e-6
    assert abs(spectrum["edges"]["lumo_eV"] - dense[n]) < 1e-6
