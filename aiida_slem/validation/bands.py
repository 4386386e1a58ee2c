"""Band-energy errors at a k-path plus random k-points, after removing (and reporting) the absolute offset.

The offset matters because a projected LCAO Hamiltonian and pw.x may differ by a constant potential
shift (the G = 0 term), and a model may learn the onsite energies up to a constant; neither changes
the physics, so errors are given after aligning the valence bands, with the offset reported beside them.
"""

from __future__ import annotations

import numpy as np

from slem.bands import kpath


def validation_kpoints(
    cell: np.ndarray, npoints: int, n_random: int, seed: int, path: str | None = None
) -> dict:
    """Fractional k-points: ``npoints`` along the cell's standard path, then ``n_random`` uniform ones."""
    if npoints < 2 and n_random < 1:
        raise ValueError("ask for a k-path of at least 2 points or at least one random k-point")
    kpts = []
    path_info = {"n_path": 0, "x": [], "special_x": [], "labels": []}
    if npoints >= 2:
        k = kpath(np.asarray(cell), path, npoints)
        kpts.append(k.kpts)
        path_info = {
            "n_path": len(k.kpts),
            "x": k.x.tolist(),
            "special_x": k.special_x.tolist(),
            "labels": list(k.labels),
        }
    if n_random > 0:
        kpts.append(np.random.default_rng(seed).uniform(0.0, 1.0, size=(n_random, 3)))
    return {"kpoints": np.concatenate(kpts).tolist(), **path_info}


def _gap(energies: np.ndarray, n_valence: int) -> float | None:
    if energies.shape[1] <= n_valence:
        return None
    return float(energies[:, n_valence].min() - energies[:, n_valence - 1].max())


def band_errors(predicted: np.ndarray, reference: np.ndarray, n_valence: int, window_eV: float) -> dict:
    """Errors (meV) of ``predicted`` (nk, nb) against ``reference`` (nk, nb'), both sorted per k-point.

    ``offset_meV``: mean valence difference, removed before ``valence_mae_meV`` and ``conduction_mae_meV``
    (conduction bands up to ``window_eV`` above the reference conduction-band minimum); ``gap_error_meV``:
    indirect gap over the sampled k-points, predicted minus reference (offset-free by construction)."""
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    if predicted.shape[0] != reference.shape[0]:
        raise ValueError(
            f"{predicted.shape[0]} predicted k-points for {reference.shape[0]} reference k-points"
        )
    n_bands = min(predicted.shape[1], reference.shape[1])
    if n_valence < 1 or n_valence > n_bands:
        raise ValueError(f"n_valence = {n_valence} but only {n_bands} bands are available on both sides")
    diff = (predicted[:, :n_bands] - reference[:, :n_bands]) * 1000.0
    valence = diff[:, :n_valence]
    offset = float(valence.mean())
    out = {
        "n_kpoints": int(predicted.shape[0]),
        "n_valence": int(n_valence),
        "offset_meV": offset,
        "valence_mae_raw_meV": float(np.abs(valence).mean()),
        "valence_mae_meV": float(np.abs(valence - offset).mean()),
        "valence_max_meV": float(np.abs(valence - offset).max()),
    }
    if n_bands > n_valence:
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
