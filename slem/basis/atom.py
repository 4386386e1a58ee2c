"""The screened, spherically symmetric pseudo-atom of a norm-conserving UPF.

Hartree atomic units throughout (bohr, Ha); the UPF's Ry values are halved on reading.
H = T + V_loc + sum_ij |beta_i> D_ij <beta_j| + V_H[n] + V_xc[n] (+ confinement), where n is
the atom's own valence density in the UPF's generation configuration (the PP_CHI
occupations), iterated to self-consistency inside a large hard-wall sphere. Each l-channel is
diagonalised in the hard-wall Bessel basis of radial_grid.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.interpolate import CubicSpline
from scipy.linalg import eigh

from slem.basis.confinement import SoftConfinement
from slem.basis.errors import MissingAtomDataError, ScfNotConvergedError
from slem.basis.radial_grid import BesselBasis, log_mesh_spline, simpson_grid
from slem.basis.xc import Functional, xc_terms
from slem.qe.upf import Upf


@dataclass(frozen=True)
class ValenceState:
    label: str
    l: int
    index: int  # 0-based rank among the eigenstates of this l
    occupation: float


@dataclass
class Channel:
    """Eigenstates of one l-channel inside a hard wall at r_c."""

    basis: BesselBasis
    energies: np.ndarray  # Ha
    coefficients: np.ndarray  # (basis.size, n_states)

    def radial(self, r: np.ndarray, state: int) -> np.ndarray:
        return self.basis.values(r) @ self.coefficients[:, state]

    def radial_derivative(self, r: np.ndarray, state: int) -> np.ndarray:
        return self.basis.derivatives(r) @ self.coefficients[:, state]


def valence_states(upf: Upf) -> list[ValenceState]:
    """Occupied pseudo-wavefunctions, ranked within each l in the order the UPF lists them."""
    if not upf.chi:
        raise MissingAtomDataError(
            f"{upf.path.name} has no PP_CHI pseudo-wavefunctions, so the pseudo-atom's valence "
            "configuration is unknown; regenerate the pseudopotential with ld1.x keeping the wavefunctions"
        )
    rank: dict[int, int] = defaultdict(int)
    states = []
    for chi in upf.chi:
        if chi.occupation > 0.0:
            states.append(ValenceState(chi.label, chi.l, rank[chi.l], chi.occupation))
        rank[chi.l] += 1
    if not states:
        raise MissingAtomDataError(
            f"{upf.path.name}: no PP_CHI has a positive occupation, so there is no valence density to "
            "screen the pseudo-atom with; use a UPF whose PP_CHI carry occupations"
        )
    return states


class PseudoAtom:
    def __init__(self, upf: Upf, functional: Functional, ecut_ry: float = 200.0, spacing: float = 0.01):
        self.upf = upf
        self.functional = functional
        self.q_max = float(np.sqrt(ecut_ry))  # Ry = bohr^-2 for a plane wave
        self.spacing = spacing
        self.states = valence_states(upf)
        self._vloc = log_mesh_spline(upf.r, 0.5 * upf.vloc)
        self._vloc_tail = -upf.z_valence / upf.r[-1]
        self._betas = [(b.l, log_mesh_spline(upf.r, b.values), upf.r[b.cutoff_index - 1]) for b in upf.betas]
        self._dij = 0.5 * np.asarray(upf.dij)
        self._core = None
        if upf.core_correction and upf.rho_core is not None:
            self._core = log_mesh_spline(upf.r, upf.rho_core)
        self._screen: tuple[CubicSpline, CubicSpline, float] | None = None
        self.free_energies: dict[tuple[int, int], float] = {}
        self.free_radius = 0.0
        self.scf_iterations = 0

    # potentials ----------------------------------------------------------------------------
    def _local(self, r: np.ndarray) -> np.ndarray:
        v = self._vloc(np.maximum(r, self.upf.r[0]))
        beyond = r > self.upf.r[-1]
        v[beyond] = self._vloc_tail * self.upf.r[-1] / r[beyond]
        return v

    def _core_density(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._core is None:
            return np.zeros_like(r), np.zeros_like(r)
        inside = r <= self.upf.r[-1]
        n = np.where(inside, self._core(np.minimum(r, self.upf.r[-1])), 0.0)
        dn = np.where(inside, self._core(np.minimum(r, self.upf.r[-1]), 1), 0.0)
        return np.maximum(n, 0.0), dn

    def _hxc(self, r: np.ndarray, w: np.ndarray, n: np.ndarray, dn: np.ndarray):
        rho4 = 4.0 * np.pi * r**2 * n
        charge = cumulative_trapezoid(rho4, r, initial=0.0)
        inner = cumulative_trapezoid(4.0 * np.pi * r * n, r, initial=0.0)
        v_h = np.where(r > 0, charge / np.where(r > 0, r, 1.0), 0.0) + (inner[-1] - inner)
        nc, dnc = self._core_density(r)
        _, fn, g = xc_terms(self.functional, n + nc, dn + dnc)
        return v_h + fn, g

    def _screening(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._screen is None:
            raise RuntimeError("run scf() before solving confined channels")
        v_spline, g_spline, r_end = self._screen
        inside = r <= r_end
        n_electrons = sum(s.occupation for s in self.states)
        # Beyond the SCF sphere only the Hartree tail of the enclosed charge survives.
        v = np.where(inside, v_spline(np.minimum(r, r_end)), n_electrons / np.maximum(r, 1e-12))
        return v, np.where(inside, g_spline(np.minimum(r, r_end)), 0.0)

    # solver ----------------------------------------------------------------------------------
    def _hamiltonian(self, l, basis, r, w, v, g, dij=None) -> np.ndarray:
        b = basis.values(r)
        db = basis.derivatives(r)
        wr2 = w * r**2
        h = b.T @ ((wr2 * v)[:, None] * b)
        if np.any(g):
            cross = db.T @ ((wr2 * g)[:, None] * b)
            h += cross + cross.T
        idx = [i for i, (lb, _, _) in enumerate(self._betas) if lb == l]
        if idx:
            proj = np.stack(
                [b.T @ (w * r * self._betas[i][1](r) * (r <= self._betas[i][2])) for i in idx], axis=1
            )
            d = self._dij if dij is None else 0.5 * np.asarray(dij)
            h += proj @ d[np.ix_(idx, idx)] @ proj.T
        h[np.diag_indices_from(h)] += basis.kinetic
        return h

    def _diagonalise(self, l, basis, r, w, v, g, n_states) -> Channel:
        return _channel(basis, r, self._hamiltonian(l, basis, r, w, v, g), n_states)

    def channel_hamiltonian(
        self,
        l: int,
        r_c: float,
        confinement: SoftConfinement | None = None,
        dij: np.ndarray | None = None,
    ) -> tuple[BesselBasis, np.ndarray, np.ndarray, np.ndarray]:
        """(basis, r, weights, H in Ha) of channel l inside r_c (bohr) on the hard-wall Bessel basis."""
        r, w = simpson_grid(r_c, self.spacing)
        v_scr, g = self._screening(r)
        v = self._local(r) + v_scr
        if confinement is not None:
            v = v + confinement.potential(r, r_c)
        v[-1] = 0.0  # every basis function vanishes at the wall
        basis = BesselBasis(l, r_c, self.q_max)
        return basis, r, w, self._hamiltonian(l, basis, r, w, v, g, dij)

    def solve(
        self,
        l: int,
        r_c: float,
        n_states: int = 1,
        confinement: SoftConfinement | None = None,
        dij: np.ndarray | None = None,
    ) -> Channel:
        """Eigenstates of the screened atom in channel l inside r_c (bohr), optionally soft-confined.
        ``dij`` (Ry, the file's projector order) replaces the nonlocal strengths, with the screening kept:
        one j of a fully relativistic file (``relativistic.j_channel_dij``)."""
        basis, r, _, h = self.channel_hamiltonian(l, r_c, confinement, dij)
        return _channel(basis, r, h, n_states)

    def scf(self, r_free: float, tol: float = 1e-7, max_iter: int = 300, mixing: float = 0.4) -> int:
        """Screen the atom self-consistently inside a hard wall at r_free (bohr); returns iterations."""
        r, w = simpson_grid(r_free, self.spacing)
        by_l: dict[int, list[ValenceState]] = defaultdict(list)
        for s in self.states:
            by_l[s.l].append(s)
        bases = {l: BesselBasis(l, r_free, self.q_max) for l in by_l}
        n_electrons = sum(s.occupation for s in self.states)
        n, dn = self._initial_density(r, w, n_electrons)
        v_loc = self._local(r)
        for iteration in range(1, max_iter + 1):
            v_hxc, g = self._hxc(r, w, n, dn)
            n_out = np.zeros_like(r)
            dn_out = np.zeros_like(r)
            channels = {}
            for l, states in by_l.items():
                n_need = max(s.index for s in states) + 1
                channel = self._diagonalise(l, bases[l], r, w, v_loc + v_hxc, g, n_need)
                channels[l] = channel
                for s in states:
                    radial = channel.radial(r, s.index)
                    n_out += s.occupation * radial**2 / (4.0 * np.pi)
                    dn_out += (
                        s.occupation * 2.0 * radial * channel.radial_derivative(r, s.index) / (4.0 * np.pi)
                    )
            residual = float(np.sum(w * 4.0 * np.pi * r**2 * np.abs(n_out - n)))
            n = (1.0 - mixing) * n + mixing * n_out
            dn = (1.0 - mixing) * dn + mixing * dn_out
            if residual < tol:
                self.scf_iterations = iteration
                break
        else:
            raise ScfNotConvergedError(
                f"{self.upf.path.name}: the pseudo-atom did not converge in {max_iter} iterations "
                f"(density residual {residual:.1e}); check the UPF's PP_CHI occupations"
            )
        v_hxc, g = self._hxc(r, w, n, dn)
        self._screen = (CubicSpline(r, v_hxc), CubicSpline(r, g), r_free)
        self.free_radius = r_free
        self.free_energies = {(s.l, s.index): float(channels[s.l].energies[s.index]) for s in self.states}
        self.free_channels = channels
        return self.scf_iterations

    def _initial_density(self, r, w, n_electrons):
        rho = np.asarray(self.upf.rho_atom)
        if rho.size != self.upf.r.size or not np.any(rho > 0):
            rho = sum(
                s.occupation * c.values**2 for s, c in zip(self.states, self._occupied_chi(), strict=True)
            )
        # ONCVPSP meshes (PseudoDojo, SG15) start at r = 0, where rho / r^2 is 0/0: fit r > 0 only.
        mesh = self.upf.r > 0.0
        spline = log_mesh_spline(self.upf.r[mesh], rho[mesh] / (4.0 * np.pi * self.upf.r[mesh] ** 2))
        rc = np.minimum(r, self.upf.r[-1])
        rs = np.maximum(rc, self.upf.r[mesh][0])
        n = np.maximum(np.where(r <= self.upf.r[-1], spline(rs), 0.0), 0.0)
        dn = np.where((r <= self.upf.r[-1]) & (r >= self.upf.r[mesh][0]), spline(rs, 1), 0.0)
        scale = n_electrons / np.sum(w * 4.0 * np.pi * r**2 * n)
        return n * scale, dn * scale

    def _occupied_chi(self):
        return [c for c in self.upf.chi if c.occupation > 0.0]


def _channel(basis: BesselBasis, r: np.ndarray, h: np.ndarray, n_states: int) -> Channel:
    energies, vectors = eigh(0.5 * (h + h.T), subset_by_index=[0, n_states - 1], driver="evr")
    u = (basis.values(r) @ vectors) * r[:, None]
    peak = u[np.argmax(np.abs(u), axis=0), np.arange(vectors.shape[1])]
    return Channel(basis, energies[:n_states], vectors * np.sign(peak))

