"""The whole comparison of predicted frames with reference frames and pw.x eigenvalues, as one function.

Inputs are Frames and arrays, outputs a JSON-able report and PNG files. It runs on the compute node as
``slem validate`` (slem/cli/validate.py): dense generalised eigen-solves of up to ``MAX_ORBITALS``
orbitals per k-point have no place in the AiiDA daemon.
"""

from __future__ import annotations

import pathlib
from dataclasses import replace

import numpy as np

from slem.bands import bloch_matrices, generalized_eigvalsh
from slem.bands.bloch import bloch_hamiltonian, is_spinor
from slem.data.frame import Frame
from slem.data.operators import OPERATORS, channel_names, has_spin_orbit, without_spin_orbit
from slem.spinor import spin_diagonal

from .bands import band_errors
from .blocks import block_errors, parity_samples
from .kpoints import validation_kpoints
from .metals import fermi_level, fermi_window_errors, is_metal, uniform_mesh
from .plots import band_plot, parity_plot
from .settings import Settings
from .splits import check_splits, gated_summary, split_reports
from .splitting import splitting_entry, splitting_levels
from .summary import summarise, verdict

MAX_ORBITALS = 3000  # dense diagonalisation per k-point; larger cells: slem spectrum (sparse)


def overlap_minimum(frame: Frame, kpts: np.ndarray) -> float:
    """Smallest eigenvalue of S(k) over ``kpts``: (H, S) have physical bands only if it is positive."""
    return float(min(np.linalg.eigvalsh(0.5 * (s + s.conj().T))[0] for s in bloch_matrices(frame, "S", kpts)))


def eigenvalues(
    h_frame: Frame, s_frame: Frame, kpts: np.ndarray, overlap_tolerance: float = 0.0, n_path: int = 0
) -> np.ndarray:
    """Generalised eigenvalues (nk, n) of H(k) of ``h_frame`` with S(k) of ``s_frame`` (same atoms).

    n is the number of orbitals, or with ``overlap_tolerance`` > 0 the fewest S(k) directions kept. A
    spin-polarised frame's channels become rows of their own (``spin_rows``): (2 nk, n). A spin-orbit
    frame gives its spinor bands (2n of them, one electron each)."""
    ss = bloch_matrices(s_frame, "S", kpts)
    if is_spinor(h_frame):
        ss = spin_diagonal(ss)
    channels = []
    for name in channel_names(h_frame.operators, "H"):
        hs = bloch_hamiltonian(h_frame, kpts, hamiltonian=name)
        channels.append([generalized_eigvalsh(h, s, overlap_tolerance) for h, s in zip(hs, ss, strict=True)])
    n = min(len(r) for rows in channels for r in rows)
    return spin_rows([np.array([r[:n] for r in rows]) for rows in channels], n_path)


def scalar_levels(h_frame: Frame, s_frame: Frame, k: np.ndarray, overlap_tolerance: float) -> np.ndarray:
    """The spinor levels at ``k`` of ``h_frame`` without its spin-orbit parts: each scalar level twice."""
    plain = replace(h_frame, operators=without_spin_orbit(h_frame.operators))
    return np.repeat(eigenvalues(plain, s_frame, np.asarray(k)[None], overlap_tolerance)[0], 2)


def spin_rows(channels: list[np.ndarray], n_path: int = 0) -> np.ndarray:
    """Stack the bands (nk, n) of each spin channel as k-point rows: [up path, down path, up rest, down rest].

    A row is one (k, spin) state set, so matching and window errors never mix the channels, the path rows
    stay in front (``n_path`` times the channel count), and the spin-degenerate Fermi-level solve over
    equally weighted rows counts each state once: 2 sum_rows f / (2 nk) = sum_(k,spin) f / nk."""
    return np.concatenate([c[:n_path] for c in channels] + [c[n_path:] for c in channels])


def frame_kpoints(frame: Frame, settings: Settings) -> dict:
    """The validation k-points; a sheet (vacuum rule of slem.data.dimensionality) gets in-plane ones."""
    return validation_kpoints(
        frame.cell,
        settings.kpath_npoints,
        settings.n_random_k,
        settings.seed,
        positions=frame.positions,
        pbc=frame.pbc,
    )


def _split_errors(pred: np.ndarray, ref: np.ndarray, n_path: int, errors, *args, **kwargs) -> dict:
    """``errors(pred, ref, *args, **kwargs)`` over all k-points, and over the path and random ones."""
    out = {"all": errors(pred, ref, *args, **kwargs)}
    if 0 < n_path < len(pred):
        out["path"] = errors(pred[:n_path], ref[:n_path], *args, **kwargs)
        out["random"] = errors(pred[n_path:], ref[n_path:], *args, **kwargs)
    return out


def _metal_entry(
    pred: Frame, overlap: Frame, ref: Frame, n_el: float, kinfo: dict, settings: Settings
) -> tuple[dict, float]:
    """E_F of the reference and predicted H on one uniform mesh; returns (E_F entry, window centre)."""
    tol = float(settings.overlap_tolerance)
    mesh = uniform_mesh(ref.cell, settings.fermi_kspacing, kinfo["periodic_axes"])
    width = settings.fermi_smearing_eV
    ef_ref = fermi_level(eigenvalues(ref, ref, mesh, tol), n_el, width)
    ef_pred = fermi_level(eigenvalues(pred, overlap, mesh, tol), n_el, width)
    # the projection's own E_F (the SCF's smearing and k-mesh) centres the window when it is recorded
    centre = ref.metadata.get("fermi_energy_ev")
    centre = ef_ref if centre is None else float(centre)
    entry = {
        "n_mesh_kpoints": int(len(mesh)),
        "mesh_fermi_energy_eV": ef_ref,
        "predicted_mesh_fermi_energy_eV": ef_pred,
        "fermi_error_meV": 1000.0 * (ef_pred - ef_ref),
    }
    return entry, centre


def _band_plot(
    path: pathlib.Path, kinfo: dict, curves: dict, entry: dict, ref: Frame, titled: str, n_valence: int,
    window: float, centre: float | None,
) -> None:
    """One band plot of a frame (or of one spin channel): E_F (metals, ``centre``) or the VBM at zero."""
    errors = entry["vs_lcao"]["all"]
    if centre is not None:
        zero = {"LCAO reference": centre, "SLEM": centre + errors["offset_meV"] / 1000.0}
        if "pw.x" in curves:
            zero["pw.x"] = float(ref.metadata["qe_fermi_energy_ev"])
        aligned = {name: e - zero[name] for name, e in curves.items()}
        mae = errors["fermi_window_mae_meV"]
        mae = "n/a" if mae is None else f"{mae:.1f} meV"
        title = (
            f"{titled}\nMAE within {window:g} eV of E_F vs LCAO {mae}, "
            f"E_F error {errors['fermi_error_meV']:.0f} meV"
        )
    else:
        aligned = {name: e - e[:, n_valence - 1].max() for name, e in curves.items()}
        gap = errors.get("gap_error_meV")
        title = f"{titled}\nvalence MAE vs LCAO {errors['valence_mae_meV']:.1f} meV" + (
            f", gap error {gap:.0f} meV" if gap is not None else ""
        )
    band_plot(path, kinfo, aligned, n_valence, title, zero_label="E_F" if centre is not None else "VBM")


def compare(
    predicted: list[Frame],
    reference: list[Frame],
    labels: list[str],
    n_electrons: list[float],
    settings: Settings,
    outdir: pathlib.Path,
    pw_bands: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    splits: dict[str, str] | None = None,
) -> tuple[dict, dict[str, pathlib.Path]]:
    """Block and band errors plus plots. ``pw_bands[label] = (fractional k-points, eigenvalues eV)``
    must sample the k-points of ``frame_kpoints``; ``splits[label]``: each frame's transfer split
    (aiida_slem/validation/splits.py). Returns (report, {plot name: PNG path})."""
    pw_bands = pw_bands or {}
    if splits:
        check_splits(labels, splits)
    for frame in reference:
        n_orb = int(frame.orbitals_per_atom.sum())
        if n_orb > MAX_ORBITALS:
            raise ValueError(
                f"a reference frame has {n_orb} orbitals (> {MAX_ORBITALS}); dense band errors would "
                "be too slow here: validate on smaller held-out cells"
            )
    common = set.intersection(*(set(f.operators) for f in predicted + reference))
    operators = sorted(common, key=OPERATORS.index)
    report: dict = {
        "blocks": block_errors(predicted, reference, operators),
        "bands": {},
        "operators": operators,
    }
    plots: dict[str, pathlib.Path] = {}
    samples = {op: parity_samples(predicted, reference, op, seed=settings.seed) for op in operators}
    plots["parity"] = outdir / "parity.png"
    parity_plot(plots["parity"], samples, report["blocks"])

    kinds = set()
    for label, pred, ref, n_el in zip(labels, predicted, reference, n_electrons, strict=True):
        metal = is_metal(ref.metadata)
        kinds.add("metal" if metal else "insulator")
        channels = channel_names(ref.operators, "H")
        if len(channels) > 1 and not metal:
            raise ValueError(
                f"frame {label}: a spin-polarised frame must come from a smeared SCF (occupations='smearing' "
                "in its metadata): its bands are compared near the one Fermi level of both channels"
            )
        spinor = has_spin_orbit(ref.operators)
        if has_spin_orbit(pred.operators) != spinor:
            raise ValueError(
                f"frame {label}: the reference "
                + ("holds spin-orbit parts (H_so_x, ...) but the prediction does not: predict with a model "
                   "trained on H_so_x, H_so_y, H_so_z" if spinor else
                   "has no spin-orbit parts but the prediction does: compare it with a spin-orbit reference")
            )
        # spinor bands hold one electron each, the other frames' bands two
        per_band = 1 if spinor else 2
        if not metal and not spinor and abs(n_el / 2 - round(n_el / 2)) > 1e-6:
            raise ValueError(
                f"frame {label}: {n_el} electrons is not an even number; an insulator is compared band "
                "by band. A metal must come from an SCF with occupations='smearing' (frame metadata)"
            )
        n_valence = max(1, int(round(n_el / per_band)))
        # 0 for frames projected before the basis recorded its shells (slem.basis.shells)
        n_semicore = 0 if metal else int(ref.metadata.get("semicore_bands") or 0) * (2 // per_band)
        kinfo = frame_kpoints(ref, settings)
        kpts = np.asarray(kinfo["kpoints"])
        if channel_names(pred.operators, "H") != channels:
            raise ValueError(
                f"frame {label}: the reference holds {channels} but the prediction "
                f"{channel_names(pred.operators, 'H')}; predict with a model trained on these spin channels"
            )
        n_path = kinfo["n_path"] * len(channels)  # rows of the path (spin_rows)
        # a DZP overlap is nearly singular (smallest eigenvalue ~1e-4), so a predicted S with 1e-3 errors
        # can be indefinite; the bands of the predicted H are then taken with the exact (reference) S.
        # With an overlap tolerance the directions below it are dropped anyway, so only an S(k) with an
        # eigenvalue below -tolerance (a broken overlap model, not conditioning) needs the reference S.
        tol = float(settings.overlap_tolerance)
        s_min_ref, s_min_pred = overlap_minimum(ref, kpts), overlap_minimum(pred, kpts)
        if s_min_ref <= 0:
            raise ValueError(
                f"frame {label}: the reference S(k) is not positive definite (smallest eigenvalue "
                f"{s_min_ref:.3g}); the reference frame is damaged, re-project it"
            )
        overlap = pred if (s_min_pred > 0 or (tol > 0 and s_min_pred > -tol)) else ref
        e_pred = eigenvalues(pred, overlap, kpts, tol, kinfo["n_path"])
        e_ref = eigenvalues(ref, ref, kpts, tol, kinfo["n_path"])
        window = settings.conduction_window_eV
        entry = {
            "overlap_used": "predicted"
            if overlap is pred
            else "reference (the predicted S is not positive definite)",
            "predicted_S_min_eigenvalue": s_min_pred,
            "reference_S_min_eigenvalue": s_min_ref,
            "overlap_tolerance": tol,
            "n_bands_compared": int(min(e_pred.shape[1], e_ref.shape[1])),
            "n_valence": n_valence - n_semicore,
            "n_semicore": n_semicore,
            "n_path": kinfo["n_path"],
            "n_random": settings.n_random_k,
            "electronic_type": "metal" if metal else "insulator",
            "periodic_axes": kinfo["periodic_axes"],
            "spin_channels": [name.partition("_")[2] or "none" for name in channels],
            "spin_orbit": spinor,
        }
        if metal:
            # the Fermi solve counts two electrons per band: a spinor band's one is half of that
            fermi, centre = _metal_entry(pred, overlap, ref, n_el * 2 / per_band, kinfo, settings)
            entry["fermi"] = fermi
            window = settings.fermi_window_eV
            entry["vs_lcao"] = _split_errors(e_pred, e_ref, n_path, fermi_window_errors, centre, window)
            entry["vs_lcao"]["all"]["fermi_error_meV"] = fermi["fermi_error_meV"]
        else:
            entry["vs_lcao"] = _split_errors(
                e_pred, e_ref, n_path, band_errors, n_valence, window, n_semicore=n_semicore
            )
        curves = {"LCAO reference": e_ref, "SLEM": e_pred}
        e_pw = None
        if label in pw_bands:
            k_pw, e_pw = (np.asarray(a, float) for a in pw_bands[label])
            # a spin-polarised frame's pw.x bands are (2, nk, nb): the up, then the down channel
            e_pw = spin_rows(list(e_pw), kinfo["n_path"]) if e_pw.ndim == 3 else e_pw
            if k_pw.shape != kpts.shape or np.abs(k_pw - kpts).max() > 1e-6:
                raise ValueError(
                    f"frame {label}: the pw.x eigenvalues were computed at other k-points than the "
                    "validation k-points; rerun the pw.x bands step with these k-points"
                )
            # pw.x holds vacuum and free-electron states the localized basis cannot: match by assignment
            if metal:
                ef_pw = ref.metadata.get("qe_fermi_energy_ev")
                if ef_pw is None:
                    raise ValueError(
                        f"frame {label}: a metal frame without metadata 'qe_fermi_energy_ev' (pw.x's "
                        "Fermi energy); re-project it with this slem version, or drop 'pw_code'"
                    )
                args = (fermi_window_errors, float(ef_pw), window)
            else:
                args = (band_errors, n_valence, window)
            extra = {} if metal else {"n_semicore": n_semicore}
            entry["vs_pw"] = _split_errors(e_pred, e_pw, n_path, *args, matching="assignment", **extra)
            entry["lcao_vs_pw"] = _split_errors(e_ref, e_pw, n_path, *args, matching="assignment", **extra)
            curves = {"pw.x": e_pw, **curves}
        levels = splitting_levels(e_ref, n_valence) if spinor and not metal else None
        if levels is not None:
            at_vbm = kpts[levels[0]]
            scalar = (scalar_levels(pred, overlap, at_vbm, tol), scalar_levels(ref, ref, at_vbm, tol))
            entry["valence_splitting"] = splitting_entry(e_pred, e_ref, levels, kpts, e_pw, scalar)
        report["bands"][label] = entry
        for c, name in enumerate(channels if kinfo["n_path"] else []):
            rows = slice(c * kinfo["n_path"], (c + 1) * kinfo["n_path"])
            spin = name.partition("_")[2]
            key = f"bands_{label}_{spin}" if spin else f"bands_{label}"
            titled = f"{label} ({splits[label].replace('_', ' ')})" if splits else label
            titled += f", spin {spin}" if spin else ""
            plots[key] = outdir / f"{key}.png"
            _band_plot(plots[key], kinfo, {n: e[rows] for n, e in curves.items()}, entry, ref, titled,
                       n_valence, window, centre if metal else None)

    report["summary"] = summarise(report)
    if splits:
        report["splits"], split_plots = split_reports(
            predicted, reference, labels, splits, report, settings.seed, outdir
        )
        plots.update(split_plots)
    thresholds = dict(settings.thresholds) if "insulator" in kinds else {}
    if "metal" in kinds:
        # a metal has no valence band error to check: its band entries come from metal_thresholds
        thresholds.update(settings.metal_thresholds or settings.thresholds)
    gated, covers = gated_summary(report)
    report["verdict"] = {**verdict(gated, thresholds), "frames": covers}
    return report, plots
