"""The pure numerics of the validation step: block errors, band errors with offset, verdict, plots."""

from __future__ import annotations

import numpy as np
import pytest

from slem.bands import band_energies, bloch_matrices
from slem.data.frame import frame_from_blocks
from slem.evaluate.bands import band_errors
from slem.evaluate.blocks import block_errors
from slem.evaluate.compare import Settings, compare, verdict
from slem.evaluate.kpoints import validation_kpoints
from slem.evaluate.splitting import splitting_entry, splitting_levels

SHELLS = "1s1p"
NORB = 4


def si2_frame(seed: int = 0, half: bool = False, drop: tuple | None = None, h_shift: float = 0.0):
    """Two-atom diamond Si with a physical-looking sp Hamiltonian (S positive definite)."""
    rng = np.random.default_rng(seed)
    a = 5.43
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    positions = np.array([[0, 0, 0], [0.25 * a] * 3])
    keys = [(0, 0, 0, 0, 0), (1, 1, 0, 0, 0)]
    for r in [(0, 0, 0), (-1, 0, 0), (0, -1, 0), (0, 0, -1)]:
        keys.append((0, 1, *r))
        if not half:
            keys.append((1, 0, *(-x for x in r)))
    h, s = {}, {}
    onsite_h = np.diag([-5.0, 1.5, 1.5, 1.5])
    for key in keys:
        i, j, *r = key
        if i == j:
            h[key], s[key] = onsite_h + h_shift * np.eye(NORB), np.eye(NORB)
    hop = {
        k: rng.normal(scale=0.5, size=(NORB, NORB)) - 1.0 * np.eye(NORB)
        for k in keys
        if k[0] == 0 and k[1] == 1
    }
    hop_s = {k: rng.normal(scale=0.03, size=(NORB, NORB)) for k in hop}
    for key in hop:
        h[key], s[key] = hop[key], hop_s[key]
        partner = (1, 0, *(-x for x in key[2:]))
        if partner in keys:
            h[partner], s[partner] = hop[key].T, hop_s[key].T
    for blocks in (h, s):
        if drop in blocks:
            del blocks[drop]
    return frame_from_blocks(
        ["Si", "Si"], positions, cell, [True] * 3, {"Si": SHELLS}, {"H": h, "S": s}, {"label": "si2"}
    )


def test_identical_frames_have_zero_error():
    frame = si2_frame()
    errors = block_errors([frame], [frame], ["H", "S"])
    assert errors["H"]["all"]["mae"] == 0.0
    assert errors["H"]["unit"] == "meV"
    assert set(errors["H"]) >= {"onsite", "hopping", "Si-Si", "onsite Si-Si", "hopping Si-Si"}
    assert errors["H"]["blocks_missing_in_prediction"] == 0


def test_onsite_shift_is_measured_in_meV_on_onsite_blocks_only():
    reference, shifted = si2_frame(), si2_frame(h_shift=0.02)
    errors = block_errors([shifted], [reference], ["H", "S"])
    assert errors["H"]["hopping"]["mae"] == pytest.approx(0.0)
    # 0.02 eV on the 4 diagonal elements of each 4x4 onsite block: 20 meV * 4 / 16
    assert errors["H"]["onsite"]["mae"] == pytest.approx(5.0)
    assert errors["H"]["onsite"]["max"] == pytest.approx(20.0)
    assert errors["S"]["all"]["mae"] == pytest.approx(0.0)


def test_half_pair_list_compares_equal_to_full_list():
    errors = block_errors([si2_frame(half=True)], [si2_frame()], ["H", "S"])
    assert errors["H"]["all"]["mae"] == pytest.approx(0.0)
    assert errors["H"]["blocks_missing_in_prediction"] == 0


def test_missing_block_counts_against_zero():
    dropped = (0, 1, -1, 0, 0)
    reference = si2_frame()
    errors = block_errors([si2_frame(drop=dropped)], [reference], ["H"])
    # the dropped block is refilled from its partner (1, 0, 1, 0, 0), so nothing is missing
    assert errors["H"]["blocks_missing_in_prediction"] == 0
    errors = block_errors([si2_frame(half=True, drop=dropped)], [reference], ["H"])
    assert errors["H"]["blocks_missing_in_prediction"] == 2  # the block and its transposed partner
    expected = np.abs(reference.blocks("H")[dropped]).mean()
    assert errors["H"]["hopping"]["max"] == pytest.approx(1000 * np.abs(reference.blocks("H")[dropped]).max())
    assert errors["H"]["hopping"]["mae"] == pytest.approx(1000 * expected * 2 / 8)


def test_different_atoms_are_refused():
    other = si2_frame()
    other.positions = other.positions + 0.1
    with pytest.raises(ValueError, match="different positions"):
        block_errors([other], [si2_frame()], ["H"])


def test_band_offset_is_reported_and_removed():
    rng = np.random.default_rng(1)
    reference = np.sort(rng.normal(size=(5, 8)), axis=1)
    reference[:, 4:] += 3.0  # a gap above 4 valence bands
    result = band_errors(reference + 0.1, reference, n_valence=4, window_eV=10.0)
    assert result["offset_meV"] == pytest.approx(100.0)
    assert result["valence_mae_raw_meV"] == pytest.approx(100.0)
    assert result["valence_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    assert result["conduction_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    assert result["gap_error_meV"] == pytest.approx(0.0, abs=1e-9)


def test_gap_error_and_conduction_window():
    reference = np.tile(np.array([-2.0, -1.0, 1.0, 1.5, 9.0]), (3, 1))
    predicted = reference.copy()
    predicted[:, 2:] += 0.05
    result = band_errors(predicted, reference, n_valence=2, window_eV=2.0)
    assert result["gap_error_meV"] == pytest.approx(50.0)
    assert result["n_conduction_values"] == 6  # the band at 9 eV lies outside CBM + 2 eV
    assert result["conduction_mae_meV"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="n_valence"):
        band_errors(predicted, reference, n_valence=7, window_eV=2.0)


def test_semicore_bands_are_reported_apart_from_the_valence_bands():
    # two deep semicore bands 30 meV off, two valence bands 10 meV off, a conduction band exact
    reference = np.tile(np.array([-40.0, -39.0, -2.0, -1.0, 1.0]), (3, 1))
    predicted = reference + np.array([0.03, 0.03, 0.01, 0.01, 0.01])
    everything = band_errors(predicted, reference, n_valence=4, window_eV=2.0)
    assert everything["offset_meV"] == pytest.approx(20.0)
    assert everything["valence_mae_meV"] == pytest.approx(10.0)
    split = band_errors(predicted, reference, n_valence=4, window_eV=2.0, n_semicore=2)
    assert split["n_valence"] == 2 and split["n_semicore"] == 2
    assert split["offset_meV"] == pytest.approx(10.0)
    assert split["valence_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    assert split["semicore_mae_meV"] == pytest.approx(20.0)
    assert split["conduction_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="n_semicore"):
        band_errors(predicted, reference, n_valence=4, window_eV=2.0, n_semicore=4)


def test_valence_splitting_is_read_at_the_reference_vbm_with_its_band_indices():
    # 4 valence bands at 2 k-points: the VBM is at k 1, where the top pair is degenerate within 0.5 meV
    reference = np.array([[-3.0, -2.0, -1.0, -0.2, 2.0], [-3.0, -1.5, -0.1004, -0.1, 1.0]])
    levels = splitting_levels(reference, 4)
    assert levels == (1, 3, 1)  # the pair (2, 3) is one level
    predicted = reference + np.array([[0, 0, 0, 0, 0], [0.01, 0.02, -0.03, 0.0, 0.0]])
    pw = reference - 0.5  # a constant offset leaves a splitting alone
    scalar = (np.array([-3.0, -3.0, -1.3, -1.3, 1.0]), np.array([-3.0, -3.0, -1.2, -1.2, 1.0]))
    entry = splitting_entry(predicted, reference, levels, np.array([[0, 0, 0], [0.5, 0, 0]]), pw, scalar)
    assert entry["kpoint"] == [0.5, 0, 0] and entry["bands"] == [1, 3]
    assert entry["reference_meV"] == pytest.approx(1400) and entry["error_meV"] == pytest.approx(-20)
    assert entry["lcao_vs_pw_meV"] == pytest.approx(0, abs=1e-9)
    # without spin-orbit parts bands 1 and 3 lie 1700 (predicted) and 1800 meV (reference) apart
    assert entry["reference_spin_orbit_part_meV"] == pytest.approx(1400 - 1800)
    assert entry["spin_orbit_part_error_meV"] == pytest.approx((1380 - 1700) - (1400 - 1800))
    # a tighter tolerance splits the pair; an all-degenerate valence holds no splitting
    assert splitting_levels(reference, 4, degeneracy_meV=0.1) == (1, 3, 2)
    assert splitting_levels(np.zeros((2, 3)), 2) is None
    with pytest.raises(ValueError, match="fewer than the 4 valence bands"):
        splitting_entry(predicted, reference, levels, np.zeros((2, 3)), pw=pw[:, :2])


def test_validation_kpoints_are_reproducible():
    cell = np.eye(3) * 5.43
    first, second = validation_kpoints(cell, 20, 5, 3), validation_kpoints(cell, 20, 5, 3)
    assert first == second
    assert len(first["kpoints"]) == first["n_path"] + 5
    assert validation_kpoints(cell, 20, 5, 4)["kpoints"][-1] != first["kpoints"][-1]


def test_verdict():
    summary = {"H_mae_meV": 3.0, "gap_error_vs_lcao_meV": -40.0}
    result = verdict(summary, {"H_mae_meV": 5.0, "gap_error_vs_lcao_meV": 30.0})
    assert not result["passed"]
    assert result["checks"]["H_mae_meV"]["passed"]
    assert not result["checks"]["gap_error_vs_lcao_meV"]["passed"]
    missing = verdict(summary, {"D_mae": 1.0})
    assert not missing["passed"] and "not measured" in missing["checks"]["D_mae"]["note"]
    assert verdict(summary, {})["passed"]


def test_compare_reports_plots_and_pw_comparison(tmp_path):
    reference, predicted = si2_frame(), si2_frame()
    predicted.operators["H"] = reference.operators["H"] + 0.01 * reference.operators["S"]  # E -> E + 10 meV
    settings = Settings(kpath_npoints=15, n_random_k=3, thresholds={"H_mae_meV": 0.5})
    kpts = np.asarray(validation_kpoints(reference.cell, 15, 3, 0)["kpoints"])
    pw = band_energies(reference, kpts) - 0.3  # a pretend plane-wave reference, offset by -0.3 eV
    report, plots = compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path, {"si2": (kpts, pw)})
    assert set(plots) == {"parity", "bands_si2"}
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in plots.values())
    bands = report["bands"]["si2"]
    assert bands["vs_lcao"]["all"]["offset_meV"] == pytest.approx(10.0)
    assert bands["vs_lcao"]["all"]["valence_mae_meV"] == pytest.approx(0.0, abs=1e-6)
    assert bands["lcao_vs_pw"]["all"]["offset_meV"] == pytest.approx(300.0)
    assert set(bands["vs_lcao"]) == {"all", "path", "random"}
    assert report["summary"]["offset_vs_pw_meV"] == pytest.approx(310.0)
    assert report["summary"]["H_mae_meV"] > 0.5
    assert not report["verdict"]["passed"]
    with pytest.raises(ValueError, match="other k-points"):
        compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path, {"si2": (kpts[:-1], pw[:-1])})


def test_indefinite_predicted_overlap_falls_back_to_reference_overlap(tmp_path):
    reference, predicted = si2_frame(), si2_frame()
    predicted.operators["S"] = reference.operators["S"] - 2.0 * (reference.operators["S"] == 1.0)  # onsite -1
    predicted.operators["H"] = reference.operators["H"] + 0.02 * reference.operators["S"]
    settings = Settings(kpath_npoints=10, n_random_k=2)
    report, _ = compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path)
    bands = report["bands"]["si2"]
    assert bands["predicted_S_min_eigenvalue"] < 0 < bands["reference_S_min_eigenvalue"]
    assert bands["overlap_used"].startswith("reference")
    assert report["summary"]["frames_with_reference_S"] == 1
    assert bands["vs_lcao"]["all"]["offset_meV"] == pytest.approx(20.0)


def test_overlap_tolerance_is_applied_to_both_sides_and_checked(tmp_path):
    """A predicted S slightly indefinite (within the tolerance) is used, not replaced by the reference S."""
    reference, predicted = si2_frame(), si2_frame()
    kpts = np.asarray(validation_kpoints(reference.cell, 10, 2, 0)["kpoints"])
    s_min = min(np.linalg.eigvalsh(bloch_matrices(reference, "S", kpts))[:, 0])
    onsite = np.zeros_like(reference.operators["S"])
    for p, ((i, j), r) in enumerate(zip(reference.pairs, reference.cell_shifts, strict=True)):
        if i == j and not r.any():
            onsite[reference.block_offsets[p] : reference.block_offsets[p + 1]] = np.eye(NORB).ravel()
    predicted.operators["S"] = reference.operators["S"] - (s_min + 1e-3) * onsite  # min eigenvalue -1e-3
    tol = 0.02  # drops the predicted S(k) direction at -1e-3, none of the reference (min ~0.79)
    settings = Settings.from_dict({"kpath_npoints": 10, "n_random_k": 2, "overlap_tolerance": tol})
    report, _ = compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path)
    bands = report["bands"]["si2"]
    assert bands["predicted_S_min_eigenvalue"] < 0 and bands["overlap_used"] == "predicted"
    assert bands["overlap_tolerance"] == tol and bands["n_bands_compared"] < 2 * NORB
    exact, _ = compare([reference], [reference], ["si2"], [8.0], settings, tmp_path)
    assert exact["bands"]["si2"]["vs_lcao"]["all"]["valence_mae_meV"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="overlap_tolerance"):
        Settings.from_dict({"overlap_tolerance": -1.0})


def test_compare_keeps_the_frames_semicore_bands_out_of_the_valence_numbers(tmp_path):
    """A frame recording one semicore band: the valence MAE, offset and threshold see the others only."""
    reference, predicted = si2_frame(), si2_frame()
    predicted.operators["H"] = reference.operators["H"] + 0.01 * reference.operators["S"]  # E -> E + 10 meV
    settings = Settings(kpath_npoints=10, n_random_k=2, thresholds={"valence_mae_vs_lcao_meV": 1.0})
    plain, _ = compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path)
    reference.metadata["semicore_bands"] = 1
    split, _ = compare([predicted], [reference], ["si2"], [8.0], settings, tmp_path)
    assert plain["bands"]["si2"]["n_semicore"] == 0 and "semicore_mae_vs_lcao_meV" not in plain["summary"]
    bands = split["bands"]["si2"]
    assert bands["n_semicore"] == 1 and bands["n_valence"] == 3
    assert bands["vs_lcao"]["all"]["semicore_mae_meV"] == pytest.approx(0.0, abs=1e-6)
    assert split["summary"]["semicore_mae_vs_lcao_meV"] == pytest.approx(0.0, abs=1e-6)
    assert split["summary"]["offset_vs_lcao_meV"] == pytest.approx(10.0)
    assert split["verdict"]["passed"]
