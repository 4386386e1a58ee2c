"""Committee disagreement: how much models that differ only in their training seed disagree on a frame, and
whether that spread ranks frames by their true error.

A committee's members share species, basis and cutoffs, so their predictions of one frame hold the same
blocks in the same order; a member that does not is refused (it is another model, not another seed). The
spread of a frame is the members' standard deviation of each H matrix element (ddof 1), averaged over
the elements (``sigma_H_meV``), and of each band energy at a few k-points (``band_sigma_meV``, with the
overlap's near-null directions dropped as ``slem validate`` drops them: with the DZP basis's nearly singular
S(k) the members' ghost levels differ by eV on every frame and drown the spread), and of the bands around
the Fermi level by count (``fermi_band_sigma_meV``: the ``FERMI_BANDS`` highest occupied and lowest empty
bands, which is what validation scores; the mean over all bands is dominated by deep and high empty bands,
and the mean H spread by the many blocks that barely move them). Where the frame has a reference H, the
error of the members' mean against it (``error_H_meV``) is what the spread should rank: ``spearman`` is the
rank correlation over those frames (``fermi_band_error_meV``, the mean's error on the Fermi window's
bands, is what the Fermi band spread should rank). ``rank_by`` names the spread that orders the selection
(``RANKINGS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slem.bands.window import fermi_band_window, occupied_bands
from slem.data.frame import Frame
from slem.data.operators import channel_names, has_spin_orbit, is_spin_polarised


def check_members(members: Sequence[Frame], label: str = "the frame") -> None:
    """ValueError unless every member predicted the same blocks (same pairs and cell shifts) of ``label``."""
    if len(members) < 2:
        raise ValueError(f"a committee needs at least 2 models, got {len(members)}")
    first = members[0]
    for m, other in enumerate(members[1:], start=1):
        if (
            other.basis != first.basis
            or not np.array_equal(other.pairs, first.pairs)
            or not np.array_equal(other.cell_shifts, first.cell_shifts)
        ):
            raise ValueError(
                f"committee member {m} predicts other blocks of {label} than member 0 (basis or cutoffs "
                "differ); a committee is one training config with different seeds: retrain it so"
            )


def mean_frame(members: Sequence[Frame]) -> Frame:
    """The members' mean prediction, a frame with their blocks averaged."""
    first = members[0]
    operators = {op: np.mean([m.operators[op] for m in members], axis=0) for op in first.operators}
    return Frame(first.numbers, first.positions, first.cell, first.pbc, first.basis, first.pairs,
                 first.cell_shifts, operators, {**first.metadata, "committee_size": len(members)})


def block_spread(members: Sequence[Frame], operator: str = "H") -> tuple[float, float]:
    """(mean, max) over matrix elements of the members' standard deviation, in the operator's raw unit; over
    both spin channels of a spin-polarised prediction (H_up and H_down)."""
    names = channel_names(members[0].operators, operator)
    if not names:
        raise ValueError(f"the committee's predictions hold no {operator} (operators: "
                         f"{sorted(members[0].operators)}); a committee ranks by the spread of its H")
    std = np.std([np.concatenate([m.operators[n] for n in names]) for m in members], axis=0, ddof=1)
    return float(std.mean()), float(std.max())


def one_electron_per_band(frame: Frame) -> bool:
    """Spinor bands (spin-orbit), or the merged levels of both channels of a spin-polarised frame."""
    return has_spin_orbit(frame.operators) or is_spin_polarised(frame.operators)


# the validation protocol's overlap_tolerance (workflows/protocols/validation.yaml)
BAND_OVERLAP_TOLERANCE = 1e-2


def member_bands(members: Sequence[Frame], kpts: np.ndarray,
                 overlap_tolerance: float = BAND_OVERLAP_TOLERANCE) -> np.ndarray:
    """(members, k-points, bands) band energies in eV, cut to the fewest bands any member keeps."""
    bands = [frame_bands(m, kpts, overlap_tolerance) for m in members]
    n = min(b.shape[1] for b in bands)
    return np.array([b[:, :n] for b in bands])


def frame_bands(frame: Frame, kpts: np.ndarray, overlap_tolerance: float) -> np.ndarray:
    """(k-points, bands) in eV; a spin-polarised frame's two channels merged into one ascending list per
    k-point (one electron per level), as its electrons fill them."""
    from slem.bands.bloch import band_energies

    channels = [band_energies(frame, kpts, hamiltonian=name, overlap_tolerance=overlap_tolerance)
                for name in channel_names(frame.operators, "H")]
    n = min(b.shape[1] for b in channels)
    return np.sort(np.concatenate([b[:, :n] for b in channels], axis=1), axis=1)


def band_spread(bands: np.ndarray, window: slice = slice(None)) -> float:
    """Mean over k-points and the ``window``'s bands of the members' standard deviation (eV) of
    ``member_bands``."""
    return float(np.std(bands[:, :, window], axis=0, ddof=1).mean())


# bands on each side of the Fermi level by count for fermi_band_sigma_meV: in Si8 DZP (16 occupied bands,
# 4 k-points) six span the top 3.3-3.4 eV of the valence band and the lowest 2.6-3.3 eV of the conduction band
FERMI_BANDS = 6
# the spreads a selection can rank by, each a per-frame row key of committee_report; the AiiDA plugin reads
# them in the daemon, so this module imports its numerics (blocks, bands, spectrum, scipy) where they are used
RANKINGS = ("sigma_H_meV", "max_sigma_H_meV", "band_sigma_meV", "fermi_band_sigma_meV")


def fermi_window(frame: Frame, n_electrons: float, n_bands: int, half_width: int = FERMI_BANDS) -> slice:
    """The ``half_width`` highest occupied and ``half_width`` lowest empty of ``n_bands`` bands, counted
    from ``n_electrons`` (one electron per spinor band, or per level of the merged spin channels of
    ``frame``, two otherwise). In a metal these are the bands that cross or nearly cross E_F."""
    occupied = occupied_bands(n_electrons, one_electron_per_band(frame))
    try:
        return fermi_band_window(occupied, n_bands, half_width)
    except ValueError as exc:
        if half_width < 1:
            raise
        raise ValueError(f"{n_electrons:g} electrons: {exc}; the committee's D (electron count) or overlap "
                         "is wrong") from exc


def fermi_band_error(predicted: Frame, reference: Frame, kpts: np.ndarray, n_electrons: float,
                     half_width: int = FERMI_BANDS,
                     overlap_tolerance: float = BAND_OVERLAP_TOLERANCE) -> float:
    """Mean absolute error (eV) of ``predicted``'s ``fermi_window`` bands against ``reference``'s: what the
    Fermi band spread should rank, as the H error is what the H spread should."""
    ours, theirs = member_bands([predicted, reference], kpts, overlap_tolerance)
    window = fermi_window(reference, n_electrons, ours.shape[1], half_width)
    return float(np.abs(ours[:, window] - theirs[:, window]).mean())


def h_error(predicted: Frame, reference: Frame, channels: Sequence[str]) -> float:
    """H MAE in meV, over both spin channels of a spin-polarised frame (equal counts: the mean of theirs)."""
    from .blocks import block_errors

    errors = block_errors([predicted], [reference], list(channels))
    return float(np.mean([errors[name]["all"]["mae"] for name in channels]))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation, None for fewer than 3 pairs or a constant sequence."""
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def committee_report(
    members_per_frame: Sequence[Sequence[Frame]],
    references: Sequence[Frame | None],
    labels: Sequence[str],
    n_kpoints: int = 4,
    select: int = 0,
    seed: int = 0,
    overlap_tolerance: float = BAND_OVERLAP_TOLERANCE,
    rank_by: str = "sigma_H_meV",
) -> dict:
    """Per-frame spread (and error of the mean where a reference H exists), their rank correlations, and
    the ``select`` frames of largest ``rank_by`` spread (the ones to compute with DFT next).

    ``fermi_band_sigma_meV`` needs each frame's electron count: the reference's ``n_electrons`` metadata,
    else Tr(DS) of the members' mean D and S; without either (or with a count that leaves no empty band) it
    is None, and ranking by it is refused."""
    from slem.spectrum.analysis import electron_count

    if rank_by not in RANKINGS:
        raise ValueError(f"rank_by must be one of {', '.join(RANKINGS)}, got {rank_by!r}")
    rng = np.random.default_rng(seed)
    rows = []
    for members, reference, label in zip(members_per_frame, references, labels, strict=True):
        check_members(members, label)
        mean_sigma, max_sigma = block_spread(members, "H")
        kpts = np.vstack([np.zeros(3), rng.uniform(-0.5, 0.5, size=(max(n_kpoints - 1, 0), 3))])
        kpts[:, ~np.asarray(members[0].pbc)] = 0.0  # no k along a non-periodic axis
        mean = mean_frame(members)
        bands = member_bands(members, kpts, overlap_tolerance)  # once, for both band spreads
        row = {"label": label, "sigma_H_meV": 1e3 * mean_sigma, "max_sigma_H_meV": 1e3 * max_sigma,
               "band_sigma_meV": 1e3 * band_spread(bands)}
        try:
            counted = reference if reference is not None and reference.metadata.get("n_electrons") else mean
            n_electrons = electron_count(counted)[0]
            window = fermi_window(members[0], n_electrons, bands.shape[2])
            row["fermi_band_sigma_meV"] = 1e3 * band_spread(bands, window)
        except ValueError as exc:  # no electron count (SpectrumError), or one that leaves no empty band
            if rank_by == "fermi_band_sigma_meV":
                raise ValueError(
                    f"frame {label}: cannot rank by the bands around E_F: {exc}. Train the committee with D, "
                    "or rank by sigma_H_meV") from None
            row["fermi_band_sigma_meV"] = None  # the other spreads still rank the frame
        channels = channel_names(members[0].operators, "H")
        if reference is not None and channel_names(reference.operators, "H") == channels:
            row["error_H_meV"] = h_error(mean, reference, channels)
            row["member_error_H_meV"] = float(np.mean([h_error(m, reference, channels) for m in members]))
            if row["fermi_band_sigma_meV"] is not None:
                row["fermi_band_error_meV"] = 1e3 * fermi_band_error(
                    mean, reference, kpts, n_electrons, overlap_tolerance=overlap_tolerance)
        rows.append(row)
    known = [r for r in rows if "error_H_meV" in r]
    errors = [r["error_H_meV"] for r in known]
    order = sorted(range(len(rows)), key=lambda k: -rows[k][rank_by])
    fermi = [r for r in known if "fermi_band_error_meV" in r]
    fermi_errors = [r["fermi_band_error_meV"] for r in fermi]
    return {
        "committee_size": len(members_per_frame[0]) if members_per_frame else 0,
        "frames": rows,
        "spearman_sigma_H_vs_error": spearman([r["sigma_H_meV"] for r in known], errors),
        "spearman_band_sigma_vs_error": spearman([r["band_sigma_meV"] for r in known], errors),
        "spearman_fermi_band_sigma_vs_error": spearman(
            [r["fermi_band_sigma_meV"] for r in fermi], [r["error_H_meV"] for r in fermi]),
        # against the error of the bands the validation scores
        "spearman_sigma_H_vs_fermi_band_error": spearman([r["sigma_H_meV"] for r in fermi], fermi_errors),
        "spearman_fermi_band_sigma_vs_fermi_band_error": spearman(
            [r["fermi_band_sigma_meV"] for r in fermi], fermi_errors),
        "frames_with_reference": len(known),
        "ranked_by": rank_by,
        "most_uncertain": [rows[k]["label"] for k in order[:select]],
    }
