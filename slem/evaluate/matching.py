"""Matching localized-basis bands (LCAO reference or SLEM prediction) to pw.x eigenvalues.

A plane-wave basis holds states no atom-centred basis can represent: in a slab or monolayer, the
vacuum (nearly-free-electron) states above the vacuum level and between periodic images; in any cell,
high free-electron-like bands. They interleave with the conduction bands, so comparing band n with band
n shifts every band above the first such state by one: hBN's conduction error vs pw.x went from 177 meV
to 962 meV that way. The rule (docs/aiida.md, "Comparing with pw.x"):

* states below the gap (valence) are matched by index: there the two bases describe the same states;
* in a window (the conduction window, or E_F +- window for a metal) each localized-basis state is
  assigned to a distinct pw.x state by the optimal one-to-one assignment minimising sum |e_loc - e_pw|
  (``scipy.optimize.linear_sum_assignment``), among the pw.x states of the same window widened by
  ``ASSIGNMENT_MARGIN_EV`` on each side. Extra pw.x states are left unmatched; every localized state in
  the window is matched, so a spurious predicted band still counts, at its distance from the nearest
  free pw.x state.

Only comparisons with pw.x use it; predicted vs LCAO share one basis and stay matched by index.
"""

from __future__ import annotations

import numpy as np

# wide enough that a state near the window's edge finds its partner just outside it (band errors vs pw.x
# are ~0.2 eV in the conduction bands of a DZP basis), narrow enough not to pull in far bands
ASSIGNMENT_MARGIN_EV = 0.5


def assign_states(
    local: np.ndarray, plane_wave: np.ndarray, lo: float, hi: float, margin: float = ASSIGNMENT_MARGIN_EV
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into ``local``, into ``plane_wave``) of the assignment at one k-point.

    Every ``local`` energy in [lo, hi] is assigned; candidates are the ``plane_wave`` energies in
    [lo - margin, hi + margin], topped up with the nearest ones outside it when that holds fewer states
    than it must match."""
    from scipy.optimize import linear_sum_assignment

    local, plane_wave = np.asarray(local, float), np.asarray(plane_wave, float)
    rows = np.flatnonzero((local >= lo) & (local <= hi))
    if rows.size == 0:
        return rows, rows.copy()
    if plane_wave.size < rows.size:
        raise ValueError(
            f"{rows.size} localized-basis states lie in [{lo:.3f}, {hi:.3f}] eV but pw.x computed only "
            f"{plane_wave.size} states; raise the pw.x band count ('extra_bands' of the validation)"
        )
    outside = np.maximum(lo - margin - plane_wave, plane_wave - hi - margin).clip(min=0.0)
    cols = np.flatnonzero(outside == 0.0)
    if cols.size < rows.size:
        cols = np.sort(np.argsort(outside, kind="stable")[: rows.size])
    cost = np.abs(local[rows][:, None] - plane_wave[cols][None, :])
    r, c = linear_sum_assignment(cost)
    return rows[r], cols[c]


def assigned_conduction(
    local: np.ndarray, plane_wave: np.ndarray, n_valence: int, window_eV: float
) -> tuple[np.ndarray, np.ndarray]:
    """Conduction states of ``local`` (nk, nb), offset already removed, up to ``window_eV`` above their
    own minimum, assigned to conduction states of ``plane_wave`` (nk, nb').

    Returns (local energies, matched pw.x energies), flat over k-points. The window starts at the
    localized side's conduction minimum: a pw.x vacuum state can lie below the true conduction band."""
    local, plane_wave = np.asarray(local, float), np.asarray(plane_wave, float)
    top = local[:, n_valence].min() + window_eV
    mine, theirs = [], []
    for e_loc, e_pw in zip(local, plane_wave, strict=True):
        rows, cols = assign_states(e_loc[n_valence:], e_pw[n_valence:], -np.inf, top)
        mine.append(e_loc[n_valence:][rows])
        theirs.append(e_pw[n_valence:][cols])
    return np.concatenate(mine), np.concatenate(theirs)


def assigned_window(
    local: np.ndarray, plane_wave: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """All states of ``local`` (nk, nb) in [lo, hi] (a metal's Fermi window) assigned to ``plane_wave``
    states, flat over k-points: (local energies, matched pw.x energies)."""
    mine, theirs = [], []
    for e_loc, e_pw in zip(np.asarray(local, float), np.asarray(plane_wave, float), strict=True):
        rows, cols = assign_states(e_loc, e_pw, lo, hi)
        mine.append(e_loc[rows])
        theirs.append(e_pw[cols])
    return np.concatenate(mine), np.concatenate(theirs)


def checked_bands(predicted, reference, matching: str) -> tuple[np.ndarray, np.ndarray]:
    """The two band arrays (nk, nb) as floats, refused when their k-points or the matching rule differ."""
    if matching not in ("index", "assignment"):
        raise ValueError(f"matching must be 'index' or 'assignment', got {matching!r}")
    predicted, reference = np.asarray(predicted, float), np.asarray(reference, float)
    if predicted.shape[0] != reference.shape[0]:
        raise ValueError(
            f"{predicted.shape[0]} predicted k-points for {reference.shape[0]} reference k-points"
        )
    return predicted, reference
