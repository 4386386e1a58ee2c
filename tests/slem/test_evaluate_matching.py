"""Band comparisons robust against pw.x vacuum states, metals near E_F, and 2D validation k-points."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import graphene
from test_evaluate_metrics import si2_frame

from slem.evaluate.bands import band_errors
from slem.evaluate.compare import Settings, compare, eigenvalues
from slem.evaluate.kpoints import validation_kpoints
from slem.evaluate.matching import assign_states
from slem.evaluate.metals import fermi_level, fermi_window_errors, uniform_mesh


def synthetic_bands(seed: int = 0, nk: int = 12):
    """4 valence + 6 conduction bands (eV, sorted per k), the pw.x side 20 meV noisy around them."""
    rng = np.random.default_rng(seed)
    valence = np.sort(rng.uniform(-8.0, 0.0, size=(nk, 4)), axis=1)
    conduction = np.sort(rng.uniform(1.0, 4.0, size=(nk, 6)), axis=1)
    lcao = np.concatenate([valence, conduction], axis=1)
    pw = lcao + rng.normal(scale=0.02, size=lcao.shape)
    return lcao, np.sort(pw, axis=1)


def with_vacuum_state(pw: np.ndarray, energy) -> np.ndarray:
    extra = np.broadcast_to(np.asarray(energy, float), (pw.shape[0],))[:, None]
    return np.sort(np.concatenate([pw, extra], axis=1), axis=1)


def test_a_vacuum_state_breaks_index_matching_but_not_the_assignment():
    lcao, pw = synthetic_bands()
    clean = band_errors(lcao, pw, 4, 2.0, matching="assignment")
    vacuum = with_vacuum_state(pw, 1.6)  # inside the conduction window at every k-point
    by_index = band_errors(lcao, vacuum, 4, 2.0)
    assigned = band_errors(lcao, vacuum, 4, 2.0, matching="assignment")
    assert by_index["conduction_mae_meV"] > 150.0
    assert assigned["conduction_mae_meV"] < 30.0
    # within noise of the clean comparison: a band within ~20 meV of the vacuum state may take it instead
    assert assigned["conduction_mae_meV"] == pytest.approx(clean["conduction_mae_meV"], rel=0.05)
    assert assigned["valence_mae_meV"] == pytest.approx(by_index["valence_mae_meV"])
    assert assigned["n_conduction_values"] == clean["n_conduction_values"]


def test_a_vacuum_state_below_the_conduction_band_is_not_the_reference_gap():
    lcao, pw = synthetic_bands()
    vacuum = with_vacuum_state(pw, 0.5)  # between the valence top (0) and the true conduction band (>= 1)
    assigned = band_errors(lcao, vacuum, 4, 2.0, matching="assignment")
    assert abs(assigned["gap_error_meV"]) < 60.0
    assert abs(band_errors(lcao, vacuum, 4, 2.0)["gap_error_meV"]) > 400.0


def test_a_spurious_predicted_band_still_counts():
    local = np.array([1.0, 1.5, 1.52])  # the third has no pw.x partner of its own
    pw = np.array([1.01, 1.49, 3.0, 3.1])
    rows, cols = assign_states(local, pw, -np.inf, 2.0)
    assert sorted(rows.tolist()) == [0, 1, 2]
    assert len(set(cols.tolist())) == 3  # one to one: the spurious band takes a distant state
    assert max(abs(local[rows] - pw[cols])) > 1.0


def test_too_few_pw_states_name_the_fix():
    with pytest.raises(ValueError, match="extra_bands"):
        assign_states(np.array([1.0, 1.1, 1.2]), np.array([1.0, 1.1]), -np.inf, 2.0)


def test_fermi_level_of_simple_band_sets():
    flat = np.zeros((5, 2)) + np.array([0.0, 10.0])  # half filling the lower band puts E_F on it
    assert fermi_level(flat, 1.0, 0.1) == pytest.approx(0.0, abs=1e-6)
    assert fermi_level(flat, 3.0, 0.1) == pytest.approx(10.0, abs=1e-6)
    ladder = np.tile(np.linspace(-5.0, 5.0, 101), (1, 1))
    assert fermi_level(ladder, 101.0, 0.05) == pytest.approx(0.0, abs=1e-3)  # 50.5 of 101 states
    with pytest.raises(ValueError, match="do not fit"):
        fermi_level(flat, 4.0, 0.1)


def test_fermi_window_errors_by_index_and_by_assignment():
    lcao, pw = synthetic_bands()
    shifted = lcao + 0.05  # a pure offset: removed, reported
    errors = fermi_window_errors(shifted, lcao, 2.0, 1.0)
    assert errors["offset_meV"] == pytest.approx(50.0)
    assert errors["fermi_window_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    assert errors["n_window_values"] == int((np.abs(lcao - 2.0) <= 1.0).sum())
    vacuum = with_vacuum_state(pw, 2.3)
    assert fermi_window_errors(lcao, vacuum, 2.0, 1.0)["fermi_window_mae_meV"] > 100.0
    assert fermi_window_errors(lcao, vacuum, 2.0, 1.0, matching="assignment")["fermi_window_mae_meV"] < 30.0


def test_uniform_mesh_is_in_plane_for_a_sheet():
    sheet = graphene(a=2.46, vacuum=7.5)
    mesh = uniform_mesh(sheet.cell[:], 0.25, (True, True, False))
    assert np.all(mesh[:, 2] == 0.0) and len(mesh) == 12 * 12  # |b| = 2.95 / Angstrom


def test_validation_kpoints_of_a_sheet_are_in_plane():
    sheet = graphene(a=2.46, vacuum=7.5)
    sheet.pbc = True  # as a frame stores it: the vacuum decides
    info = validation_kpoints(sheet.cell[:], 20, 10, 0, positions=sheet.positions)
    k = np.asarray(info["kpoints"])
    assert info["periodic_axes"] == [True, True, False] and info["labels"] == ["Γ", "M", "K", "Γ"]
    assert np.all(k[:, 2] == 0.0) and np.abs(k[info["n_path"] :, :2]).min() > 0.0
    bulk_random = validation_kpoints(np.eye(3) * 5.43, 0, 10, 0)["kpoints"]
    assert np.allclose(np.asarray(bulk_random)[:, :2], k[info["n_path"] :, :2])  # same draws in-plane


def metal_pair(shift: float = 0.02):
    """A 3-electron (odd: metallic) frame and its prediction shifted by ``shift`` eV (H + shift * S)."""
    reference, predicted = si2_frame(), si2_frame()
    for frame in (reference, predicted):
        frame.metadata["occupations"] = "smearing"
    predicted.operators["H"] = reference.operators["H"] + shift * reference.operators["S"]
    return reference, predicted


def test_compare_reports_a_metal_by_its_fermi_window(tmp_path):
    reference, predicted = metal_pair()
    settings = Settings(
        kpath_npoints=12,
        n_random_k=4,
        fermi_kspacing=0.6,
        thresholds={"valence_mae_vs_lcao_meV": 20.0},
        metal_thresholds={"fermi_window_mae_vs_lcao_meV": 30.0},
    )
    kpts = np.asarray(validation_kpoints(reference.cell, 12, 4, 0)["kpoints"])
    e_ref = eigenvalues(reference, reference, kpts)
    centre = fermi_level(e_ref, 3.0, 0.1)
    reference.metadata["qe_fermi_energy_ev"] = centre + 0.3
    pw = with_vacuum_state(e_ref + 0.3, centre + 0.3 + 0.4)  # an extra pw.x state in the window
    report, plots = compare([predicted], [reference], ["m"], [3.0], settings, tmp_path, {"m": (kpts, pw)})
    bands, summary = report["bands"]["m"], report["summary"]
    assert bands["electronic_type"] == "metal" and "valence_mae_meV" not in bands["vs_lcao"]["all"]
    assert summary["fermi_window_mae_vs_lcao_meV"] == pytest.approx(0.0, abs=1e-6)
    assert summary["fermi_error_vs_lcao_meV"] == pytest.approx(20.0, abs=1e-3)  # H + c S shifts E_F by c
    assert summary["offset_vs_pw_meV"] == pytest.approx(-280.0, abs=1e-6)
    assert summary["fermi_window_mae_lcao_vs_pw_meV"] == pytest.approx(0.0, abs=1e-6)
    assert summary["valence_mae_vs_lcao_meV"] is None
    assert set(report["verdict"]["checks"]) == {"fermi_window_mae_vs_lcao_meV"}
    assert report["verdict"]["passed"]
    assert plots["bands_m"].read_bytes()[:4] == b"\x89PNG"
    # a prediction with other hoppings fails the metal threshold
    predicted = si2_frame(seed=1)
    predicted.metadata["occupations"] = "smearing"
    bad, _ = compare([predicted], [reference], ["m"], [3.0], settings, tmp_path)
    assert bad["summary"]["fermi_window_mae_vs_lcao_meV"] > 30.0 and not bad["verdict"]["passed"]


def test_odd_electron_count_without_smearing_names_the_fix(tmp_path):
    reference = si2_frame()
    with pytest.raises(ValueError, match="occupations='smearing'"):
        compare([reference], [reference], ["x"], [3.0], Settings(kpath_npoints=4, n_random_k=1), tmp_path)
