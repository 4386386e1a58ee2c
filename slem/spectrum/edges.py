"""Eigenvalues of H c = E S c nearest a target energy, and band edges, by sparse shift-invert Lanczos.

``ShiftInvert`` factorizes H - sigma S once with SuperLU (symmetric mode, diagonal pivots) and hands
(H - sigma S)^{-1} to ARPACK (``eigsh`` with ``sigma``, ``M=S``, mode "normal"): the eigenvalues nearest
sigma converge in a few dozen solves. The same factorization gives the inertia: with diagonal pivots,
P (H - sigma S) P^T = L D L^H, and by Sylvester's law (S positive definite) the number of negative
pivots is the number of eigenvalues below sigma. ``band_edges`` uses it to find the highest occupied and
lowest unoccupied state by their index (n_electrons / 2, or n_electrons for spinor states), not by a guess
that sigma lies in the gap: spectrum slicing, with the KPM integrated DOS to place the next shift when
the first misses.

The factorization is exact but its fill grows faster than the atom count in 3D (nested dissection:
n^(4/3) entries, n^2 operations; the 7.4 Angstrom reach of the blocks makes the separators thick):
Si SZ at 512 atoms 0.5 s and 3.7e6 entries, at 4,096 atoms 106 s and 1.7e8 entries (3.7 GB) on one
core; at 32,768 atoms some 7e9 entries (about 80 GB), out of reach (docs/spectrum.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


class EdgesError(RuntimeError):
    """Shift-invert could not factorize or bracket the requested states."""


class ShiftInvert:
    """(H - sigma S)^{-1} by a sparse LU, its inertia, and the eigenvalues nearest sigma."""

    def __init__(self, h, s, sigma: float, ordering: str = "MMD_AT_PLUS_A") -> None:
        start = time.perf_counter()
        self.h, self.s, self.sigma = h, s, float(sigma)
        shifted = (scipy.sparse.csc_matrix(h) - self.sigma * scipy.sparse.csc_matrix(s)).tocsc()
        try:
            self.lu = scipy.sparse.linalg.splu(
                shifted, permc_spec=ordering, diag_pivot_thresh=0.0, options={"SymmetricMode": True}
            )
        except RuntimeError as exc:  # "Factor is exactly singular": sigma is an eigenvalue
            raise EdgesError(f"H - sigma S is singular at sigma = {sigma:.6f} eV ({exc})") from exc
        del shifted
        self.fill = int(self.lu.nnz)  # entries SuperLU stores for L and U (supernodes padded)
        self.inertia: int | None = None
        if np.array_equal(self.lu.perm_r, self.lu.perm_c):
            # lu.U is a copy of the upper factor: built once, its diagonal kept, the copy freed
            self.inertia = int((self.lu.U.diagonal().real < 0).sum())
        self.seconds = time.perf_counter() - start
        self.solves = 0

    def _solve(self, b):
        self.solves += 1
        return self.lu.solve(np.ascontiguousarray(b))

    def nearest(self, k: int, which: str = "LM", tol: float = 0.0, ncv: int | None = None) -> np.ndarray:
        """The ``k`` eigenvalues nearest sigma, ascending; ``which`` "SA": the k just below sigma, "LA": the
        k just above (ARPACK's ``which`` applies to 1 / (E - sigma) in shift-invert mode)."""
        n = self.h.shape[0]
        k = min(int(k), n - 2)
        op = scipy.sparse.linalg.LinearOperator(self.h.shape, matvec=self._solve, dtype=self.h.dtype)
        values = scipy.sparse.linalg.eigsh(
            self.h,
            k=k,
            M=self.s,
            sigma=self.sigma,
            which=which,
            mode="normal",
            OPinv=op,
            tol=tol,
            ncv=ncv or min(n - 1, max(2 * k + 1, 20)),
            return_eigenvectors=False,
            v0=np.random.default_rng(0).normal(size=n).astype(self.h.dtype),
        )
        return np.sort(np.real(values))


@dataclass
class BandEdges:
    homo: float  # eV, the highest (partly) occupied state, index n_occupied
    lumo: float  # eV, the next state
    n_occupied: int
    sigma: float  # the shift of the last factorization
    inertia: int | None  # eigenvalues below sigma (None: SuperLU pivoted off the diagonal, not counted)
    eigenvalues: np.ndarray  # the eigenvalues found nearest the last sigma
    indices: np.ndarray  # their 1-based indices in the full spectrum (empty without the inertia)
    history: list = field(default_factory=list)  # per factorization: sigma, inertia, seconds, fill

    @property
    def gap(self) -> float:
        return self.lumo - self.homo

    def as_dict(self) -> dict:
        return {
            "homo_eV": self.homo,
            "lumo_eV": self.lumo,
            "gap_eV": self.gap,
            "n_occupied_states": self.n_occupied,
            "sigma_eV": self.sigma,
            "inertia": self.inertia,
            "inertia_checked": self.inertia is not None,
            "eigenvalues_eV": self.eigenvalues.tolist(),
            "eigenvalue_indices": self.indices.tolist(),
            "factorizations": self.history,
        }


def occupied_states(n_electrons: float, per_state: int = 2) -> int:
    """Index (1-based) of the highest occupied state: ceil(N / 2) for spin-degenerate states, N for the
    spinor states of a spin-orbit H (``per_state`` 1)."""
    if n_electrons <= 0:
        raise EdgesError(f"the electron count must be positive, got {n_electrons}")
    return int(math.ceil(n_electrons / per_state - 1e-9))


def band_edges(
    h,
    s,
    n_electrons: float,
    guess: float,
    k: int = 4,
    integrated=None,
    max_factorizations: int = 6,
    ordering: str = "MMD_AT_PLUS_A",
    per_state: int = 2,
) -> BandEdges:
    """HOMO (state ceil(N / per_state)) and LUMO of H c = E S c by shift-invert around ``guess``, checked by
    inertia.

    ``2 k`` eigenvalues nearest every shift are computed, ``k`` on each side if they all fall on one.
    ``integrated``: a function E -> number of states below E (the KPM integrated DOS); it places the next
    shift when the states are not within the ``k`` nearest: the curve is moved to agree with the exact
    count at the last shift, and the next shift is where it reaches n_occupied + 1/2."""
    n_occ = occupied_states(n_electrons, per_state)
    n = h.shape[0]
    if n_occ >= n:
        raise EdgesError(f"{n_electrons:g} electrons fill all {n} states: there is no unoccupied state")
    sigma = float(guess)
    history: list[dict] = []
    known: dict[int, float] = {}  # 1-based index in the spectrum -> eigenvalue, over all factorizations
    counts: list[tuple[float, int]] = []  # (sigma, eigenvalues below sigma)
    for _ in range(max_factorizations):
        try:
            factor = ShiftInvert(h, s, sigma, ordering)
        except EdgesError:  # sigma is an eigenvalue to machine precision
            sigma += 1e-6 * max(1.0, abs(sigma))
            factor = ShiftInvert(h, s, sigma, ordering)
        nu = factor.inertia
        room_below, room_above = (k, k) if nu is None else (min(k, nu), min(k, n - nu))
        values = factor.nearest(room_below + room_above, "LM")  # one Arnoldi run: sigma mid-gap, usually
        below, above = values[values < sigma][::-1], values[values >= sigma]
        if (len(below) == 0 and room_below) or (len(above) == 0 and room_above):
            # the 2k nearest all on one side: each side on its own, and not beyond the spectrum's end
            # (ARPACK asked for states that do not exist converges slowly to the wrong ones)
            below = factor.nearest(room_below, "SA") if room_below else np.zeros(0)
            above = factor.nearest(room_above, "LA") if room_above else np.zeros(0)
            below, above = below[below < sigma][::-1], above[above >= sigma]
        history.append(
            {
                "sigma_eV": sigma,
                "inertia": factor.inertia,
                "factorize_seconds": factor.seconds,
                "lu_entries": factor.fill,
                "solves": factor.solves,
            }
        )
        if nu is None:
            # no inertia: trust that sigma lies in the gap (the KPM estimate), as a plain shift-invert would
            if len(below) == 0 or len(above) == 0:
                raise EdgesError(f"no eigenvalue on one side of sigma = {sigma:.4f} eV")
            values = np.concatenate([below[::-1], above])
            return BandEdges(
                float(below[0]), float(above[0]), n_occ, sigma, None, values, np.zeros(0, dtype=int), history
            )
        counts.append((sigma, nu))
        known.update({nu - m: float(v) for m, v in enumerate(below)})
        known.update({nu + 1 + m: float(v) for m, v in enumerate(above)})
        if n_occ in known and n_occ + 1 in known:
            near = sorted(i for i in known if abs(i - n_occ) <= 2 * k)
            return BandEdges(
                known[n_occ],
                known[n_occ + 1],
                n_occ,
                sigma,
                nu,
                np.array([known[i] for i in near]),
                np.array(near),
                history,
            )
        sigma = _next_shift(n_occ, known, counts, integrated)
    raise EdgesError(
        f"states {n_occ} and {n_occ + 1} not bracketed after {max_factorizations} factorizations "
        f"(last sigma {sigma:.4f} eV); raise k or give a better guess"
    )


def _next_shift(n_occ: int, known: dict[int, float], counts: list[tuple[float, int]], integrated) -> float:
    """A shift between states n_occ and n_occ + 1 from what the factorizations so far have counted.

    The counting function N(E) is known exactly at every shift (the inertia) and at every eigenvalue found
    (index - 1/2); the next shift is where it reaches n_occ + 1/2: interpolated between known points when
    they bracket it, else extrapolated with the KPM integrated DOS (moved to agree with the last count) or
    with the mean density of the states found, always beyond the states already found."""
    if n_occ in known:  # the HOMO is known, so the LUMO is just above it
        return known[n_occ] + min(1e-4, 0.5 * (known.get(n_occ + 1, np.inf) - known[n_occ]))
    if n_occ + 1 in known:
        return known[n_occ + 1] - min(1e-4, 0.5 * (known[n_occ + 1] - known.get(n_occ, -np.inf)))
    target = n_occ + 0.5
    points = sorted([(e, i - 0.5) for i, e in known.items()] + [(float(e), float(c)) for e, c in counts])
    energies, count = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    lower, upper = np.flatnonzero(count < target), np.flatnonzero(count > target)
    if len(lower) and len(upper):
        a, b = lower[-1], upper[0]
        if energies[b] > energies[a]:
            return float(
                energies[a] + (target - count[a]) * (energies[b] - energies[a]) / (count[b] - count[a])
            )
    upward = len(upper) == 0
    edge = energies[-1] if upward else energies[0]
    last = counts[-1][0]
    if integrated is not None:
        offset = counts[-1][1] - float(integrated(np.array([last]))[0])
        grid = np.linspace(last - 20.0, last + 20.0, 16001)
        guess = float(grid[np.argmin(np.abs(integrated(grid) + offset - target))])
        step = 1e-3  # beyond the states found, however the smoothed DOS misplaces the level
    else:
        density = max((count[-1] - count[0]) / max(energies[-1] - energies[0], 1e-3), 1e-6)
        guess = float(edge + (target - (count[-1] if upward else count[0])) / density)
        step = abs(edge - last)  # the window at least doubles: a wrong density cannot stall the search
    return max(guess, edge + step) if upward else min(guess, edge - step)


# States closer than this to each other at the Fermi level form one multiplet: a Gamma-only supercell of a
# cubic metal (bcc Fe 4x4x4) puts a symmetry-degenerate multiplet there, whose states no choice of level
# between states N and N + 1 separates (the Fe counts gave 577 + 448 = 1025 of 1024 states).
DEGENERATE_EV = 1e-4


def channel_occupations(
    hs, s, n_electrons: float, homo: float, lumo: float, tolerance: float = DEGENERATE_EV
) -> dict | None:
    """Occupied states of each spin channel (one electron per state) at one k, exact by the inertia of
    H_c - E S; None where SuperLU pivoted off the diagonal (no inertia).

    With a gap between states N and N + 1, the counts below the mid-gap level. When they are degenerate
    (closer than ``tolerance``), the multiplet at the level (every state within ``tolerance`` of it, in
    either channel) holds the electrons left over, spread equally over its states as a vanishing smearing
    would: the occupations are fractional, and ``magnetization_range_mub`` spans the integer fillings."""

    def counts(level: float) -> list[int] | None:
        found = []
        for h in hs:
            try:
                found.append(ShiftInvert(h, s, level).inertia)
            except EdgesError:  # the level is an eigenvalue to machine precision: step off it
                found.append(ShiftInvert(h, s, level + 1e-9 * max(1.0, abs(level))).inertia)
        return None if None in found else found

    if lumo - homo > 2 * tolerance:
        below = counts(0.5 * (homo + lumo))
        if below is None:
            return None
        return {"occupied_up": below[0], "occupied_down": below[1], "magnetization_mub": below[0] - below[1]}
    below, through = counts(homo - tolerance), counts(lumo + tolerance)
    if below is None or through is None:
        return None
    inside = [b - a for a, b in zip(below, through, strict=True)]
    electrons = float(n_electrons) - sum(below)  # those the multiplet holds
    filling = electrons / sum(inside)
    up, down = (b + filling * n for b, n in zip(below, inside, strict=True))
    # integer fillings: u electrons up and electrons - u down, within each channel's share of the multiplet
    fewest, most = max(0.0, electrons - inside[1]), min(electrons, float(inside[0]))
    offset = below[0] - below[1] - electrons
    return {
        "occupied_up": up,
        "occupied_down": down,
        "magnetization_mub": up - down,
        "magnetization_range_mub": [offset + 2 * fewest, offset + 2 * most],
        "fermi_multiplet": {
            "energy_eV": 0.5 * (homo + lumo),
            "states_up": inside[0],
            "states_down": inside[1],
            "electrons": electrons,
            "tolerance_eV": tolerance,
        },
    }
