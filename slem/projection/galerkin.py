"""Kohn-Sham matrices of a localized basis at one k-point, by Galerkin projection on plane waves.

This is the exact plane-wave reference: the tests check pw.x's eigenvalues with it and compare
the real-space projection (realspace.py, used by ``project``) against it.

Everything here is in atomic units with energies in Ry (pw.x's internal units): kinetic
|k+G|^2, the pp.x potential in Ry and UPF D_ij in Ry need no conversion between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from slem.basis.orbital import ElementBasis
from slem.qe.relativistic import j_average
from slem.qe.upf import Upf
from slem.spinor import spinor_matrix

from .planewaves import apply_local_potential, g_sphere, local_potential_matrix, potential_in_g
from .radial import BOHR, bloch_coefficients, orbital_transform, projector_transform
from .realspace import expanded_dion, expanded_spin_orbit_dion

DENSE_ROW_CHUNK = 256


@dataclass
class SpeciesData:
    orbital_ls: list[int]
    orbital_splines: list[CubicSpline]
    cutoff_bohr: float
    beta_ls: list[int]
    beta_splines: list[CubicSpline]
    dion_ry: np.ndarray  # expanded to (n_proj, n_proj) over (beta, m); j-averaged for a spin-orbit UPF
    beta_radius_bohr: float
    dion_so_ry: np.ndarray | None = None  # (3, n_proj, n_proj): K_a of a spin-orbit UPF

    @property
    def n_orbitals(self) -> int:
        return sum(2 * l + 1 for l in self.orbital_ls)


def species_data(basis: ElementBasis | None, upf: Upf, qmax: float) -> SpeciesData:
    """Tabulate the radial transforms of one species' orbitals and KB projectors up to qmax (bohr^-1)."""
    kkbeta = max((b.cutoff_index for b in upf.betas), default=0)
    beta_splines = [projector_transform(b.l, upf.r, upf.rab, b.values, kkbeta, qmax) for b in upf.betas]
    orbitals = basis.orbitals if basis is not None else []
    return SpeciesData(
        orbital_ls=[o.l for o in orbitals],
        orbital_splines=[orbital_transform(o.l, o.r, o.values, qmax) for o in orbitals],
        cutoff_bohr=(basis.cutoff / BOHR) if basis is not None else 0.0,
        beta_ls=[b.l for b in upf.betas],
        beta_splines=beta_splines,
        dion_ry=expanded_dion(j_average(upf)),
        beta_radius_bohr=upf.max_projector_radius,
        dion_so_ry=expanded_spin_orbit_dion(upf) if upf.spin_orbit else None,
    )


def _with_kb(local: np.ndarray, phi_beta: np.ndarray, dion: np.ndarray) -> np.ndarray:
    """H(k) = local + <phi|beta> D <beta|phi>, made exactly hermitian."""
    hamiltonian = local + phi_beta @ dion @ phi_beta.conj().T
    return 0.5 * (hamiltonian + hamiltonian.conj().T)


class GalerkinProjector:
    """Holds the structure, the potential and the radial tables; builds S(k), H(k) on demand."""

    def __init__(
        self,
        cell_bohr: np.ndarray,
        positions_bohr: np.ndarray,
        symbols: list[str],
        potential_ry: np.ndarray,
        ecutwfc_ry: float,
        species: dict[str, SpeciesData],
    ) -> None:
        self.cell = np.asarray(cell_bohr, dtype=np.float64)
        self.positions = np.asarray(positions_bohr, dtype=np.float64)
        self.symbols = list(symbols)
        self.volume = abs(np.linalg.det(self.cell))
        self.v_r = np.asarray(potential_ry, dtype=np.float64)
        self.v_g = potential_in_g(self.v_r)
        self.ecut = float(ecutwfc_ry)
        self.species = species
        self._ext = None
        self.orbital_slices = []
        start = 0
        for s in self.symbols:
            n = species[s].n_orbitals
            self.orbital_slices.append(slice(start, start + n))
            start += n
        self.n_orbitals = start

    def plane_waves(self, k_cart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g_sphere(np.asarray(k_cart, dtype=np.float64), self.cell, self.ecut)

    def basis_coefficients(self, kg: np.ndarray) -> np.ndarray:
        blocks = []
        for s, tau in zip(self.symbols, self.positions, strict=True):
            sp = self.species[s]
            if sp.orbital_ls:
                blocks.append(bloch_coefficients(sp.orbital_ls, sp.orbital_splines, kg, tau, self.volume))
        return np.concatenate(blocks, axis=1)

    def projectors(self, kg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """KB projector coefficients (npw, n_proj) and the block-diagonal D (n_proj, n_proj), Ry."""
        blocks, dions = [], []
        for s, tau in zip(self.symbols, self.positions, strict=True):
            sp = self.species[s]
            if sp.beta_ls:
                blocks.append(bloch_coefficients(sp.beta_ls, sp.beta_splines, kg, tau, self.volume))
                dions.append(sp.dion_ry)
        if not blocks:
            return np.zeros((len(kg), 0), dtype=np.complex128), np.zeros((0, 0))
        n = sum(d.shape[0] for d in dions)
        d = np.zeros((n, n))
        start = 0
        for block in dions:
            d[start : start + len(block), start : start + len(block)] = block
            start += len(block)
        return np.concatenate(blocks, axis=1), d

    def spin_orbit_matrix(self) -> np.ndarray:
        """The block-diagonal spin-orbit KB matrices K_a (3, n_proj, n_proj), Ry, in the layout of
        ``projectors``; zero for species of scalar-relativistic files."""
        n = sum(self.species[s].dion_ry.shape[0] for s in self.symbols)
        k = np.zeros((3, n, n))
        for s, block in zip(self.symbols, self.projector_slices, strict=True):
            if self.species[s].dion_so_ry is not None:
                k[:, block, block] = self.species[s].dion_so_ry
        return k

    def _local_times(self, miller: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        npw, ncol = coeffs.shape
        dense_cost = npw * npw * ncol
        fft_cost = 2 * ncol * self.v_r.size * np.log2(self.v_r.size) * 4
        if dense_cost > fft_cost:
            return apply_local_potential(self.v_r, miller, coeffs)
        flat, lin, offset = self._extended_potential(miller)
        out = np.empty_like(coeffs)
        for start in range(0, npw, DENSE_ROW_CHUNK):
            rows = slice(start, start + DENSE_ROW_CHUNK)
            out[rows] = flat[(lin[rows] + offset)[:, None] - lin[None, :]] @ coeffs
        return out

    def _extended_potential(self, miller: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """V(G) on a box of Miller differences, flattened, a linear index per plane wave, an offset.

        V(G_a - G_b) is then flat[lin[a] + offset - lin[b]]: one integer subtraction and one
        gather per element instead of three modulo operations."""
        need = np.abs(miller).max(axis=0)
        if self._ext is None or np.any(need > self._ext[0]):
            span = need + 2
            shape = 4 * span + 1
            axes = [np.arange(-2 * s, 2 * s + 1) % n for s, n in zip(span, self.v_g.shape, strict=True)]
            self._ext = (span, self.v_g[np.ix_(*axes)].ravel(), shape)
        span, flat, shape = self._ext
        strides = np.array([shape[1] * shape[2], shape[2], 1])
        return flat, miller @ strides, int((2 * span) @ strides)

    def matrices_split(self, k_cart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """S(k), the local part T + V_loc of H(k) (Ry), <phi|beta>(k) and the KB matrix D (Ry).

        The full H(k) is local + P D P^dagger; keeping P separate lets the caller assemble the
        long-ranged three-centre KB term in real space."""
        miller, kg = self.plane_waves(k_cart)
        phi = self.basis_coefficients(kg)
        overlap = phi.conj().T @ phi
        h_phi = np.einsum("g,gi->gi", np.einsum("ij,ij->i", kg, kg), phi) + self._local_times(miller, phi)
        local = phi.conj().T @ h_phi
        beta, dion = self.projectors(kg)
        phi_beta = phi.conj().T @ beta
        return 0.5 * (overlap + overlap.conj().T), 0.5 * (local + local.conj().T), phi_beta, dion

    def matrices(self, k_cart: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """S(k) and H(k) (Ry) of the Bloch sums, H(k) = sum_R H(R) exp(i k.R)."""
        overlap, local, phi_beta, dion = self.matrices_split(k_cart)
        return overlap, _with_kb(local, phi_beta, dion)

    def matrices_spin_orbit(self, k_cart: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """S(k), the j-averaged H(k) and the spin-orbit parts H_a(k) (3, n, n), Ry: the spinor H(k) is
        ``spinor_matrix(H, H_a)``."""
        overlap, local, phi_beta, dion = self.matrices_split(k_cart)
        parts = phi_beta @ self.spin_orbit_matrix() @ phi_beta.conj().T
        return overlap, _with_kb(local, phi_beta, dion), parts

    def plane_wave_spinor_hamiltonian(self, k_cart: np.ndarray) -> np.ndarray:
        """pw.x's spin-orbit Hamiltonian on (k+G, spin), spin-major (Ry); its eigenvalues are pw.x's."""
        miller, kg = self.plane_waves(k_cart)
        beta, _ = self.projectors(kg)
        parts = beta @ self.spin_orbit_matrix() @ beta.conj().T
        return spinor_matrix(self.plane_wave_hamiltonian(k_cart), parts)

    @property
    def projector_slices(self) -> list[slice]:
        out, start = [], 0
        for s in self.symbols:
            n = self.species[s].dion_ry.shape[0]
            out.append(slice(start, start + n))
            start += n
        return out

    def plane_wave_hamiltonian(self, k_cart: np.ndarray) -> np.ndarray:
        """The full pw.x Hamiltonian <k+G|H|k+G'> (Ry); its eigenvalues are pw.x's."""
        miller, kg = self.plane_waves(k_cart)
        h = local_potential_matrix(self.v_g, miller)
        h[np.diag_indices_from(h)] += np.einsum("ij,ij->i", kg, kg)
        beta, dion = self.projectors(kg)
        if beta.shape[1]:
            h += beta @ dion @ beta.conj().T
        return 0.5 * (h + h.conj().T)
