"""The splitting of the top valence levels at the VBM of a spin-orbit frame, compared band by band.

What a spin-orbit user checks first is this splitting: Δ_so at Γ in Si or GaAs (the j = 3/2 quartet over the
j = 1/2 doublet), the spin splitting at K in MoS2 or WSe2. The band MAE averages it away, since it moves only
a few levels. It is taken at the reference's VBM k-point, between the top valence level and the first level
below it that the reference places more than ``degeneracy_meV`` lower. The same band indices are then read
from the prediction and from pw.x, so the numbers measure one gap even where a distorted frame's degeneracies
are lifted. In a thermal frame that gap is crystal field and spin-orbit coupling together, so the same
splitting of the bands without the spin-orbit parts is subtracted too: what is left, its spin-orbit part, is
what the model's H_so heads alone decide.
"""

from __future__ import annotations

import numpy as np

DEGENERACY_MEV = 1.0  # Kramers pairs at a TRIM are exact; the j = 3/2 quartet of a strained cell splits more


def splitting_levels(reference: np.ndarray, n_valence: int,
                     degeneracy_meV: float = DEGENERACY_MEV) -> tuple[int, int, int] | None:
    """(k index, top valence band, the band below the split) of ``reference`` (nk, nb), or None when the
    valence bands hold no split (a single level, or all levels degenerate)."""
    top = n_valence - 1
    k = int(np.argmax(reference[:, top]))
    gaps = (reference[k, top] - reference[k, :top]) * 1000.0
    below = np.nonzero(gaps > degeneracy_meV)[0]
    if below.size == 0:
        return None
    return k, top, int(below.max())


def splitting_entry(predicted: np.ndarray, reference: np.ndarray, levels: tuple[int, int, int],
                    kpoints: np.ndarray, pw: np.ndarray | None = None,
                    scalar: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """The splitting (meV) at ``levels`` (``splitting_levels``) of the predicted, reference and (when given)
    pw.x bands, all (nk, nb) at the same k-points, sorted per k-point, valence bands in the same order.
    ``scalar``: the predicted and reference levels (nb,) at that k-point without the spin-orbit parts, each
    scalar band twice, for the spin-orbit part of the splitting."""
    k, top, low = levels

    def split(bands: np.ndarray) -> float:
        return float(1000.0 * (bands[top] - bands[low]))

    entry = {"kpoint": [float(x) for x in kpoints[k]], "bands": [low, top],
             "reference_meV": split(reference[k]), "predicted_meV": split(predicted[k])}
    entry["error_meV"] = entry["predicted_meV"] - entry["reference_meV"]
    if pw is not None:
        if pw.shape[1] <= top:
            raise ValueError(f"the pw.x bands hold {pw.shape[1]} bands, fewer than the {top + 1} valence "
                             "bands whose splitting is compared")
        entry["pw_meV"] = split(pw[k])
        entry["error_vs_pw_meV"] = entry["predicted_meV"] - entry["pw_meV"]
        entry["lcao_vs_pw_meV"] = entry["reference_meV"] - entry["pw_meV"]
    if scalar is not None:
        for side, bands in zip(("predicted", "reference"), scalar, strict=True):
            entry[f"{side}_spin_orbit_part_meV"] = entry[f"{side}_meV"] - split(bands)
        entry["spin_orbit_part_error_meV"] = (entry["predicted_spin_orbit_part_meV"]
                                              - entry["reference_spin_orbit_part_meV"])
    return entry
