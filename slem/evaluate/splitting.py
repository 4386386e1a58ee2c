"""The spin-orbit splitting at the valence-band maximum, compared band by band.

What a spin-orbit user checks first is the splitting of the top valence levels: Δ_so at Γ in Si or GaAs
(the j = 3/2 quartet over the j = 1/2 doublet), the spin splitting at K in MoS2 or WSe2. The band MAE
averages it away, since it moves only a few levels. The splitting here is taken at the reference's VBM
k-point, between the top valence level and the first level below it that the reference places more than
``degeneracy_meV`` lower. The same band indices are then read from the prediction and from pw.x, so the
three numbers measure one physical gap even where a distorted frame's degeneracies are lifted.
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


def splitting_entry(predicted: np.ndarray, reference: np.ndarray, n_valence: int, kpoints: np.ndarray,
                    pw: np.ndarray | None = None, degeneracy_meV: float = DEGENERACY_MEV) -> dict | None:
    """The splitting (meV) at the reference VBM of the predicted, reference and (when given) pw.x bands,
    all (nk, nb) at the same k-points, sorted per k-point, valence bands in the same order."""
    levels = splitting_levels(reference, n_valence, degeneracy_meV)
    if levels is None:
        return None
    k, top, low = levels

    def split(bands: np.ndarray) -> float:
        return float(1000.0 * (bands[k, top] - bands[k, low]))

    entry = {"kpoint": [float(x) for x in kpoints[k]], "bands": [low, top], "degeneracy_meV": degeneracy_meV,
             "reference_meV": split(reference), "predicted_meV": split(predicted)}
    entry["error_meV"] = entry["predicted_meV"] - entry["reference_meV"]
    if pw is not None:
        if pw.shape[1] <= top:
            raise ValueError(f"the pw.x bands hold {pw.shape[1]} bands, fewer than the {n_valence} valence "
                             "bands whose splitting is compared")
        entry["pw_meV"] = split(pw)
        entry["error_vs_pw_meV"] = entry["predicted_meV"] - entry["pw_meV"]
        entry["lcao_vs_pw_meV"] = entry["reference_meV"] - entry["pw_meV"]
    return entry
