"""Band-energy errors at a k-path plus random k-points, after removing (and reporting) the absolute offset.

The offset matters because a projected LCAO Hamiltonian and pw.x may differ by a constant potential
shift (the G = 0 term), and a model may learn the onsite energies up to a constant; neither changes
the physics, so errors are given after aligning the valence bands, with the offset reported beside them.
"""

from __future__ import annotations

import numpy as np

from .matching import assigned_conduction, checked_bands


def _gap(energies: np.ndarray, n_valence: int) -> float | None:
    if energies.shape[1] <= n_valence:
        return None
    return float(energies[:, n_valence].min() - energies[:, n_valence - 1].max())


def band_errors(
    predicted: np.ndarray,
    reference: np.ndarray,
    n_valence: int,
    window_eV: float,
    matching: str = "index",
    n_semicore: int = 0,
) -> dict:
    """Errors (meV) of ``predicted`` (nk, nb) against ``reference`` (nk, nb'), both sorted per k-point.

    ``offset_meV``: mean valence difference, removed before ``valence_mae_meV`` and ``conduction_mae_meV``
    (conduction bands up to ``window_eV`` above the reference conduction-band minimum); ``gap_error_meV``:
    indirect gap over the sampled k-points, predicted minus reference (offset-free by construction).
    The lowest ``n_semicore`` of the ``n_valence`` occupied bands are the semicore shells' (Ga 3d, Mo 4s4p:
    slem.basis.shells): they lie 15-60 eV below the gap, so they are kept out of the valence numbers and
    the offset and reported as ``semicore_mae_meV`` (after the valence offset).
    ``matching="assignment"`` (``reference`` from pw.x): valence bands by index, conduction states by the
    one-to-one assignment of ``matching.py``, the window starting at the predicted conduction minimum, the
    reference gap from the matched pw.x states (a vacuum state is not a conduction-band minimum)."""
    predicted, reference = checked_bands(predicted, reference, matching)
    n_bands = min(predicted.shape[1], reference.shape[1])
    if n_valence < 1 or n_valence > n_bands:
        raise ValueError(f"n_valence = {n_valence} but only {n_bands} bands are available on both sides")
    if not 0 <= n_semicore < n_valence:
        raise ValueError(f"n_semicore = {n_semicore} must lie in [0, n_valence = {n_valence})")
    diff = (predicted[:, :n_bands] - reference[:, :n_bands]) * 1000.0
    valence = diff[:, n_semicore:n_valence]
    offset = float(valence.mean())
    out = {
        "n_kpoints": int(predicted.shape[0]),
        "n_valence": int(n_valence - n_semicore),
        "n_semicore": int(n_semicore),
        "matching": matching,
        "offset_meV": offset,
        "valence_mae_raw_meV": float(np.abs(valence).mean()),
        "valence_mae_meV": float(np.abs(valence - offset).mean()),
        "valence_max_meV": float(np.abs(valence - offset).max()),
    }
    if n_semicore:
        semicore = diff[:, :n_semicore] - offset
        out.update(
            {
                "semicore_mae_meV": float(np.abs(semicore).mean()),
                "semicore_max_meV": float(np.abs(semicore).max()),
            }
        )
    if matching == "assignment" and predicted.shape[1] > n_valence and reference.shape[1] > n_valence:
        mine, theirs = assigned_conduction(predicted - offset / 1000.0, reference, n_valence, window_eV)
        conduction = (mine - theirs) * 1000.0
        gap_p = _gap(predicted, n_valence)
        gap_r = float(theirs.min() - reference[:, n_valence - 1].max())
        out.update(
            {
                "conduction_window_eV": float(window_eV),
                "n_conduction_values": int(conduction.size),
                "conduction_mae_meV": float(np.abs(conduction).mean()),
                "conduction_max_meV": float(np.abs(conduction).max()),
                "gap_eV": gap_p,
                "reference_gap_eV": gap_r,
                "gap_error_meV": 1000.0 * (gap_p - gap_r),
            }
        )
    elif n_bands > n_valence:
        cbm = reference[:, n_valence].min()
        window = reference[:, n_valence:n_bands] <= cbm + window_eV
        conduction = diff[:, n_valence:n_bands][window] - offset
        out.update(
            {
                "conduction_window_eV": float(window_eV),
                "n_conduction_values": int(conduction.size),
                "conduction_mae_meV": float(np.abs(conduction).mean()),
                "conduction_max_meV": float(np.abs(conduction).max()),
            }
        )
        gap_p, gap_r = _gap(predicted, n_valence), _gap(reference, n_valence)
        out.update({"gap_eV": gap_p, "reference_gap_eV": gap_r, "gap_error_meV": 1000.0 * (gap_p - gap_r)})
    return out
