"""Band errors of a metal: with no gap, valence and conduction bands mean nothing; the states that
decide a metal's physics are those near the Fermi level.

A frame is a metal when its SCF used smeared occupations (``frame.metadata["occupations"] ==
"smearing"``, written by ``slem project``). Its band errors are then

* ``fermi_window_mae_meV``: mean |delta e| of the states within +-``window_eV`` (1 eV) of the reference
  Fermi level, after removing the offset (the mean difference of the occupied states, matched by index:
  the metal's counterpart of the valence offset). Against the LCAO reference the states are the
  reference's, matched by index; against pw.x they are the localized-basis states in the window, matched
  by the assignment of ``matching.py`` (pw.x may hold extra states there);
* ``fermi_error_meV``: Fermi level of the predicted H minus that of the reference H, both from the same
  uniform Gamma-centred k-mesh, Gaussian smearing and electron count, so the k-sampling error cancels.
"""

from __future__ import annotations

import numpy as np

from slem.data.dimensionality import mesh_from_distance
from slem.projection.occupations import fermi_level as solve_fermi_level

from .matching import assigned_window, checked_bands


def is_metal(metadata: dict) -> bool:
    return metadata.get("occupations") == "smearing"


def uniform_mesh(cell: np.ndarray, kspacing: float, periodic) -> np.ndarray:
    """Fractional k-points (nk, 3) of the Gamma-centred mesh of k-point distance ``kspacing`` (1/Angstrom,
    2 pi included), one point along non-periodic axes (``slem.data.dimensionality.mesh_from_distance``)."""
    if not kspacing > 0:
        raise ValueError(f"fermi_kspacing must be a positive k-distance in 1/Angstrom, got {kspacing}")
    axes = [np.arange(n) / n for n in mesh_from_distance(cell, kspacing, periodic)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def fermi_level(eigenvalues: np.ndarray, n_electrons: float, smearing_eV: float) -> float:
    """Chemical potential (eV) holding ``n_electrons`` in the spin-degenerate bands ``eigenvalues``
    (nk, nb, equal k weights) with Gaussian smearing of width ``smearing_eV`` (the projection's solver)."""
    e = np.asarray(eigenvalues, float)
    if n_electrons >= 2 * e.shape[1]:
        raise ValueError(
            f"{n_electrons} electrons do not fit in {e.shape[1]} bands; the basis (or the overlap "
            "tolerance, which drops S(k) directions) leaves too few states: lower overlap_tolerance"
        )
    if not smearing_eV > 0:
        raise ValueError(f"fermi_smearing_eV must be positive, got {smearing_eV}")
    return solve_fermi_level(e, np.ones(e.shape[0]), n_electrons, smearing_eV, "gaussian")


def fermi_window_errors(
    predicted: np.ndarray, reference: np.ndarray, e_fermi: float, window_eV: float, matching: str = "index"
) -> dict:
    """Errors (meV) of ``predicted`` (nk, nb) near the reference Fermi level ``e_fermi`` (eV)."""
    predicted, reference = checked_bands(predicted, reference, matching)
    n = min(predicted.shape[1], reference.shape[1])
    occupied = reference[:, :n] <= e_fermi
    if not occupied.any():
        raise ValueError(
            f"no reference state lies below the Fermi level {e_fermi:.3f} eV; the frame's Fermi energy "
            "is not in the gauge of its eigenvalues (re-project the frame)"
        )
    offset = float((predicted[:, :n] - reference[:, :n])[occupied].mean())
    lo, hi = e_fermi - window_eV, e_fermi + window_eV
    if matching == "index":
        inside = np.abs(reference[:, :n] - e_fermi) <= window_eV
        delta = (predicted[:, :n] - reference[:, :n])[inside] - offset
    else:
        mine, theirs = assigned_window(predicted - offset, reference, lo, hi)
        delta = mine - theirs
    delta = 1000.0 * delta
    return {
        "n_kpoints": int(predicted.shape[0]),
        "matching": matching,
        "fermi_energy_eV": float(e_fermi),
        "fermi_window_eV": float(window_eV),
        "offset_meV": 1000.0 * offset,
        "n_window_values": int(delta.size),
        "fermi_window_mae_meV": float(np.abs(delta).mean()) if delta.size else None,
        "fermi_window_max_meV": float(np.abs(delta).max()) if delta.size else None,
    }
