"""Committee spread (``slem.evaluate.committee``, ``slem committee``): the spread measures what it claims,
ranks frames by error when the error grows with it, and refuses members that are not one config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import train_tiny_si8

from slem.bands.bloch import band_energies
from slem.cli.committee import committee as committee_cli
from slem.data.frame import Frame, frame_from_blocks, read_frames, write_frames
from slem.evaluate.committee import (
    band_spread,
    check_members,
    committee_report,
    fermi_band_error,
    fermi_window,
    mean_frame,
    member_bands,
)

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"


def noisy(frame: Frame, sigma_ev: float, rng) -> Frame:
    operators = dict(frame.operators)
    operators["H"] = frame.operators["H"] + rng.normal(0.0, sigma_ev, frame.operators["H"].shape)
    return Frame(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.basis, frame.pairs,
                 frame.cell_shifts, operators, frame.metadata)


def test_spread_is_the_members_standard_deviation_and_ranks_the_error():
    """Members = reference + Gaussian noise of a known width per frame: the H spread recovers the width, the
    committee mean's error shrinks as 1/sqrt(members), and the rank correlation is exactly 1."""
    rng = np.random.default_rng(0)
    frames = read_frames(SI8)
    widths = [2e-3 * (k + 1) for k in range(len(frames))]  # eV
    members = [[noisy(f, w, rng) for _ in range(4)] for f, w in zip(frames, widths, strict=True)]
    report = committee_report(members, frames, [str(k) for k in range(len(frames))], select=2)
    for row, width in zip(report["frames"], widths, strict=True):
        # mean of a sample std over 4 members: c4(4) = 0.921 of the width (Gaussian)
        assert row["sigma_H_meV"] == pytest.approx(0.921 * 1e3 * width, rel=0.03)
        # |mean of 4| for N(0, w^2/4): sqrt(2/pi) w / 2
        assert row["error_H_meV"] == pytest.approx(1e3 * width * np.sqrt(2 / np.pi) / 2, rel=0.05)
        assert row["member_error_H_meV"] == pytest.approx(1e3 * width * np.sqrt(2 / np.pi), rel=0.05)
        assert row["band_sigma_meV"] > 0
    assert report["spearman_sigma_H_vs_error"] == pytest.approx(1.0)
    assert report["most_uncertain"] == [str(len(frames) - 1), str(len(frames) - 2)]
    assert report["frames_with_reference"] == len(frames)


def test_band_spread_drops_only_near_null_overlap_directions():
    """The band spread uses validation's overlap tolerance: on a well-conditioned S (Si 1s1p, smallest S(k)
    eigenvalue 0.15) it keeps every direction and equals the plain generalized problem's spread; a
    tolerance above that eigenvalue drops directions, and with them bands."""
    rng = np.random.default_rng(1)
    frame = read_frames(SI8)[0]
    members = [noisy(frame, 5e-3, rng) for _ in range(3)]
    kpts = np.vstack([np.zeros(3), rng.uniform(-0.5, 0.5, (2, 3))])
    plain = band_spread(member_bands(members, kpts, overlap_tolerance=0.0))
    assert band_spread(member_bands(members, kpts)) == pytest.approx(plain, rel=1e-9)
    assert band_spread(member_bands(members, kpts, overlap_tolerance=0.5)) != pytest.approx(plain, rel=1e-3)


def fermi_band_spread(members: list[Frame], kpts: np.ndarray, n_electrons: float, half_width: int = 6):
    """The report's fermi_band_sigma_meV (in eV): the band spread over the Fermi window."""
    bands = member_bands(members, kpts)
    return band_spread(bands, fermi_window(members[0], n_electrons, bands.shape[2], half_width))


def shifted(frame: Frame, shift_ev: float) -> Frame:
    """H + shift * S: the same eigenvectors, every band moved by exactly ``shift_ev``."""
    h = frame.operators["H"] + shift_ev * frame.operators["S"]
    return dataclasses.replace(frame, operators={**frame.operators, "H": h})


def test_fermi_band_spread_is_the_spread_of_the_bands_around_the_fermi_level():
    """Members rigidly shifted by (0, d, 2d) have band spread d on every band. Noise on top: the spread is
    that of the 6 highest occupied and 6 lowest empty bands by count (16 occupied in Si8 1s1p), not of
    the others; an electron count with no empty band left is refused."""
    rng = np.random.default_rng(2)
    frame = read_frames(SI8)[0]
    kpts = np.vstack([np.zeros(3), rng.uniform(-0.5, 0.5, (2, 3))])
    rigid = [shifted(frame, 0.01 * k) for k in range(3)]
    assert fermi_band_spread(rigid, kpts, 32) == pytest.approx(0.01, rel=1e-6)
    assert fermi_band_error(rigid[2], frame, kpts, 32) == pytest.approx(0.02, rel=1e-6)
    members = [noisy(frame, 5e-3, rng) for _ in range(3)]
    bands = np.array([band_energies(m, kpts, overlap_tolerance=1e-2) for m in members])
    spread = np.std(bands, axis=0, ddof=1)
    assert fermi_band_spread(members, kpts, 32) == pytest.approx(spread[:, 10:22].mean(), rel=1e-9)
    assert fermi_band_spread(members, kpts, 32, half_width=2) == pytest.approx(spread[:, 14:18].mean(),
                                                                               rel=1e-9)
    assert fermi_band_spread(members, kpts, 32) != pytest.approx(spread.mean(), rel=1e-3)
    with pytest.raises(ValueError, match="64 electrons: 32 occupied bands leave no empty band"):
        fermi_band_spread(members, kpts, 64)


def test_selection_follows_the_chosen_spread():
    """Frames whose members disagree most on H elements but agree on the bands (a rigid shift moves every
    band, so frame 0 gets the largest shift and the smallest H noise): ranked by H spread frame 0 comes
    last, ranked by the Fermi band spread first."""
    rng = np.random.default_rng(3)
    frames = read_frames(SI8)[:3]
    members = [[shifted(noisy(f, 1e-3 * (k + 1), rng), 0.05 * m * (k == 0)) for m in range(3)]
               for k, f in enumerate(frames)]
    labels = ["a", "b", "c"]
    by_h = committee_report(members, frames, labels, n_kpoints=2, select=3)
    by_bands = committee_report(members, frames, labels, n_kpoints=2, select=3,
                                rank_by="fermi_band_sigma_meV")
    assert by_h["most_uncertain"] == ["c", "b", "a"] and by_h["ranked_by"] == "sigma_H_meV"
    assert by_bands["most_uncertain"][0] == "a" and by_bands["ranked_by"] == "fermi_band_sigma_meV"
    assert by_bands["frames"][0]["fermi_band_sigma_meV"] > 40  # the 50 meV shifts dominate
    # the mean of shifts (0, 50, 100 meV) is 50 meV off the reference on every band
    assert by_bands["frames"][0]["fermi_band_error_meV"] == pytest.approx(50, abs=3)
    assert by_bands["spearman_fermi_band_sigma_vs_fermi_band_error"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rank_by must be one of"):
        committee_report(members, frames, labels, rank_by="sigma_D")
    # unlabelled candidates and members without D: no electron count, so no Fermi level to rank around
    without_d = [[dataclasses.replace(m, operators={op: m.operators[op] for op in ("H", "S")}, metadata={})
                  for m in row] for row in members]
    assert committee_report(without_d, [None] * 3, labels)["frames"][0]["fermi_band_sigma_meV"] is None
    with pytest.raises(ValueError, match="frame a: cannot rank by the bands around E_F: .* no D .* Train the "
                       "committee with D"):
        committee_report(without_d, [None] * 3, labels, rank_by="fermi_band_sigma_meV")
    # a count that leaves no empty band (64 electrons, 32 bands): the H ranking goes on, the band one refuses
    overfull = [dataclasses.replace(f, metadata={**f.metadata, "n_electrons": 64.0}) for f in frames]
    assert committee_report(members, overfull, labels)["frames"][0]["fermi_band_sigma_meV"] is None
    with pytest.raises(ValueError, match="frame a: cannot rank .* 64 electrons: .* leave no empty band"):
        committee_report(members, overfull, labels, rank_by="fermi_band_sigma_meV")


def test_identical_members_have_no_spread_and_no_correlation():
    frames = read_frames(SI8)[:3]
    report = committee_report([[f, f] for f in frames], frames, ["a", "b", "c"])
    assert all(row["sigma_H_meV"] == 0 and row["error_H_meV"] == 0 for row in report["frames"])
    assert report["spearman_sigma_H_vs_error"] is None  # constant: nothing to rank
    assert np.allclose(mean_frame([frames[0], frames[0]]).operators["H"], frames[0].operators["H"])


def test_members_with_other_blocks_are_refused():
    frame = read_frames(SI8)[0]
    blocks = {op: dict(list(frame.blocks(op).items())[:-1]) for op in frame.operators}  # one bond fewer
    fewer = frame_from_blocks(frame.numbers, frame.positions, frame.cell, frame.pbc, frame.basis, blocks,
                              frame.metadata)
    with pytest.raises(ValueError, match="member 1 predicts other blocks .* different seeds"):
        check_members([frame, fewer], "frame x")
    with pytest.raises(ValueError, match="at least 2 models"):
        check_members([frame], "frame x")


@pytest.fixture(scope="module")
def committee_models(tmp_path_factory, tiny_si_model) -> list[Path]:
    root = tmp_path_factory.mktemp("committee")
    return [train_tiny_si8(root / f"seed{seed}", tiny_si_model, seed=seed, steps=5) for seed in range(3)]


def test_command_reports_spread_error_and_selection(committee_models, tmp_path):
    out = tmp_path / "committee.json"
    result = CliRunner().invoke(
        committee_cli,
        [*map(str, committee_models), "--frames", str(SI8), "-o", str(out), "--select", "3",
         "--kpoints", "2", "--overlap-tolerance", "0.01", "--rank-by", "fermi_band_sigma_meV"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["committee_size"] == 3 and len(report["frames"]) == 8
    assert report["frames_with_reference"] == 8
    assert all(row["sigma_H_meV"] > 0 and row["error_H_meV"] > 0 for row in report["frames"])
    # the committee mean is never worse than its members on average (convexity of |.|)
    assert all(row["error_H_meV"] <= row["member_error_H_meV"] + 1e-9 for row in report["frames"])
    assert -1.0 <= report["spearman_sigma_H_vs_error"] <= 1.0
    fermi = {row["label"]: row["fermi_band_sigma_meV"] for row in report["frames"]}
    assert report["most_uncertain"] == sorted(fermi, key=lambda label: -fermi[label])[:3]
    assert "rank correlation of H spread and error" in result.output


def test_command_refuses_one_model_without_writing(committee_models, tmp_path):
    out = tmp_path / "committee.json"
    args = [str(committee_models[0]), "--frames", str(SI8), "-o", str(out)]
    result = CliRunner().invoke(committee_cli, args)
    assert result.exit_code == 2
    assert "at least 2 models" in result.output
    assert not out.exists()


def spin_polarised(frame: Frame, split_ev: float, shift_ev: float = 0.0) -> Frame:
    """H_up = H + (split/2 + shift) S, H_down = H + (-split/2 + shift) S, one S: every level of both channels
    moves by exactly ``shift_ev``."""
    h, s = frame.operators["H"], frame.operators["S"]
    operators = {"H_up": h + (0.5 * split_ev + shift_ev) * s, "H_down": h + (-0.5 * split_ev + shift_ev) * s,
                 "S": s, "D_up": 0.5 * frame.operators["D"], "D_down": 0.5 * frame.operators["D"]}
    return dataclasses.replace(frame, operators=operators, metadata={})


def test_spin_polarised_committee_ranks_over_both_channels():
    """A magnetic material's committee predicts H_up and H_down. Members shifted by (0, d, 2d) on both
    channels: H spread d * mean|S| over both channels, band spread d on every merged level, the Fermi window
    counted at one electron per level of the two merged channels (32 of 2 x 32 levels in Si8 1s1p), and
    the H error over both channels; the electron count is Tr(DS) summed over D_up and D_down."""
    frames = read_frames(SI8)[:2]
    d = 0.01
    members = [[spin_polarised(f, 0.4, d * m) for m in range(3)] for f in frames]
    references = [spin_polarised(f, 0.4) for f in frames]
    report = committee_report(members, references, ["a", "b"], n_kpoints=2, select=2,
                              rank_by="fermi_band_sigma_meV")
    for row, frame in zip(report["frames"], frames, strict=True):
        s = frame.operators["S"]
        assert row["sigma_H_meV"] == pytest.approx(1e3 * d * np.abs(s).mean(), rel=1e-9)
        assert row["band_sigma_meV"] == pytest.approx(1e3 * d, rel=1e-6)
        assert row["fermi_band_sigma_meV"] == pytest.approx(1e3 * d, rel=1e-6)
        assert row["fermi_band_error_meV"] == pytest.approx(1e3 * d, rel=1e-6)  # the mean is shifted by d
        assert row["error_H_meV"] == pytest.approx(1e3 * d * np.abs(s).mean(), rel=1e-9)
    magnetic = members[0][0]
    bands = member_bands([magnetic, magnetic], np.zeros((1, 3)))
    assert bands.shape == (2, 1, 64)
    assert fermi_window(magnetic, 32, 64) == slice(26, 38)
    with pytest.raises(ValueError, match="hold no H"):
        committee_report([[dataclasses.replace(m, operators={"S": m.operators["S"]}) for m in members[0]]],
                         [None], ["a"])


def test_command_on_trained_spin_polarised_members(tmp_path, tiny_si_model):
    """Two tiny models trained on H_up, H_down and S (Si8 with a 0.4 eV rigid exchange split) with different
    seeds: ``slem committee`` predicts both channels, spreads and errors over both, and a Fermi window of
    one electron per merged level (32 electrons of Si8 1s1p among 2 x 32 levels)."""
    import torch

    from slem.train.config import validate_config
    from slem.train.trainer import Trainer

    data = tmp_path / "spin.h5"
    frames = [dataclasses.replace(spin_polarised(f, 0.4), metadata={"label": f"fe{i}", "n_electrons": 32.0})
              for i, f in enumerate(read_frames(SI8))]
    write_frames(data, frames, split={"train": [0, 1, 2, 3], "validation": [4], "test": [5, 6, 7]})
    models = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for seed in (0, 1):
        cfg = {"dataset": {"path": str(data)}, "operators": ["H_up", "H_down", "S"],
               "output_dir": str(tmp_path / f"seed{seed}"), "model": dict(tiny_si_model),
               "training": {"max_steps": 3, "validate_every": 3, "seed": seed}}
        Trainer(validate_config(cfg), progress=False).run()
        models.append(str(tmp_path / f"seed{seed}" / "model.pt"))
    torch.set_num_threads(threads)
    out = tmp_path / "committee.json"
    args = [*models, "--frames", str(data), "-o", str(out), "--select", "2", "--kpoints", "2",
            "--rank-by", "fermi_band_sigma_meV"]
    result = CliRunner().invoke(committee_cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["committee_size"] == 2 and report["frames_with_reference"] == 8
    rows = report["frames"]
    assert all(r["sigma_H_meV"] > 0 and r["fermi_band_sigma_meV"] > 0 and r["error_H_meV"] > 0 for r in rows)
    fermi = {r["label"]: r["fermi_band_sigma_meV"] for r in rows}
    assert report["most_uncertain"] == sorted(fermi, key=lambda label: -fermi[label])[:2]
