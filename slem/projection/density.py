"""D(R) from the Bloch sums of the projected H and S on a time-reversal-reduced k-mesh.

D_ij(R) = (1/N_k) sum_k w_k sum_n 2 f_nk c_in^* c_jn exp(i k.R), with c^H S c = 1 (a spin-polarised system:
one D per channel with f in place of 2f and one E_F for both, ``spin_density_matrices``), so
sum_R Tr(D S) = 2 sum_k w_k sum_n f_nk / N_k = N_electrons and sum_R Tr(D H) is the band energy
2 sum_k w_k sum_n f_nk eps_nk / N_k. Insulators (fixed occupations) fill the lowest N/2 bands in one
pass; smeared occupations need E_F first, so the mesh is walked twice (eigenvalues, then vectors)
instead of holding every eigenvector of the mesh in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from slem.spinor import spin_diagonal, spinor_matrix

from .kmesh import reduced_mesh
from .occupations import fermi_level, occupation
from .pairs import BlockAccumulator, BlockSet

MESH_CHUNK_BYTES = 3.2e7  # H(k) (complex) of the k-points diagonalised together stays below this
BATCHED_EIGH_MAX_SIZE = 128  # orbitals; larger generalised eigenproblems are solved k by k
# Largest occupation (per spin) the highest LCAO band may carry: above it the basis has too few
# orbitals for the smearing tail and the electrons it cuts off would be put into lower bands.
TOP_BAND_OCCUPATION_TOLERANCE = 1e-3
NEGLIGIBLE_OCCUPATION = 1e-15  # bands above the last one reaching this anywhere are left out of D


class DensityMatrixError(ValueError):
    """The basis cannot hold the electrons, or it is linearly dependent."""


@dataclass
class Smearing:
    kind: str  # gaussian | mp | mv | fd (QE's names)
    width: float  # degauss, in the Hamiltonian's energy unit


@dataclass
class DensityResult:
    packed: np.ndarray
    band_energy: float
    homo: float | None
    lumo: float | None
    fermi_energy: float | None
    top_band_occupation: float | None
    bands_in_density: int
    min_overlap_eigenvalue: float


def bloch_states(h: np.ndarray, s: np.ndarray, n_vectors: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (n_k, n) of H c = e S c for a stack of k-points and the first ``n_vectors``
    eigenvectors (n_k, n, n_vectors), normalised to c^H S c = 1 (None when n_vectors is 0).

    Small matrices go through numpy's batched routines (S = L L^H, then the standard problem
    L^-1 H L^-H y = e y, c = L^-H y): one call for all k instead of one LAPACK call per k. Large
    ones go one by one through LAPACK's generalised solver, which is faster there."""
    if h.shape[-1] > BATCHED_EIGH_MAX_SIZE:
        if n_vectors == 0:
            eps = [scipy.linalg.eigh(a, b, eigvals_only=True) for a, b in zip(h, s, strict=True)]
            return np.stack(eps), None
        pairs = [scipy.linalg.eigh(a, b) for a, b in zip(h, s, strict=True)]
        return np.stack([e for e, _ in pairs]), np.stack([v[:, :n_vectors] for _, v in pairs])
    inverse = np.linalg.inv(np.linalg.cholesky(s))
    inverse_h = inverse.conj().transpose(0, 2, 1)
    if n_vectors == 0:
        return np.linalg.eigvalsh(inverse @ h @ inverse_h), None
    eps, y = np.linalg.eigh(inverse @ h @ inverse_h)
    return eps, inverse_h @ y[:, :, :n_vectors]


class BlochMesh:
    """The reduced k-mesh in chunks of Bloch-summed (k, w, H(k), S(k)); checks S(k) on the first walk.

    With ``so_sets`` (the spin-orbit parts H_so_a, slem.projection.spin_orbit) H(k) and S(k) are the
    spinor ones, H (x) 1 + i sum_a H_a (x) sigma_a and S (x) 1 (slem.spinor)."""

    def __init__(
        self,
        h_set: BlockSet,
        s_set: BlockSet,
        kmesh: tuple[int, int, int],
        so_sets: list[BlockSet] | None = None,
    ) -> None:
        self.h_set, self.s_set, self.so_sets = h_set, s_set, so_sets
        self.k_frac, self.weights = reduced_mesh(kmesh)
        self.n_k = float(np.prod(kmesh))
        self.min_s_eig = np.inf
        # exp(i k.R) = +-1 at time-reversal-invariant k: real matrices there, a 4x cheaper eigh. Not with
        # spin-orbit, whose i sigma_a terms keep every k complex.
        self.real = np.array(
            [so_sets is None and np.allclose(2 * kf, np.round(2 * kf)) for kf in self.k_frac], dtype=bool
        )
        size = max(h_set.n, 1) * (1 if so_sets is None else 2)
        self.chunk = max(1, int(MESH_CHUNK_BYTES // (16 * size**2)))

    def walk(self, check_overlap: bool) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for subset in (np.flatnonzero(self.real), np.flatnonzero(~self.real)):
            for part in np.array_split(subset, -(-len(subset) // self.chunk)) if len(subset) else []:
                kf, w = self.k_frac[part], self.weights[part]
                overlap, hamiltonian = self.s_set.at_many(kf), self.h_set.at_many(kf)
                if self.real[part[0]]:
                    overlap, hamiltonian = overlap.real.copy(), hamiltonian.real.copy()
                if check_overlap:
                    s_eigs = np.linalg.eigvalsh(overlap)[:, 0]
                    self.min_s_eig = min(self.min_s_eig, float(s_eigs.min()))
                    if s_eigs.min() < 1e-8:
                        raise DensityMatrixError(
                            "the basis is linearly dependent (smallest overlap eigenvalue "
                            f"{s_eigs.min():.2e}); use a basis with fewer or less diffuse orbitals"
                        )
                if self.so_sets is not None:
                    vector = np.stack([s.at_many(kf) for s in self.so_sets])
                    hamiltonian, overlap = spinor_matrix(hamiltonian, vector), spin_diagonal(overlap)
                yield kf, w, hamiltonian, overlap


def density_matrix(
    h_set: BlockSet,
    s_set: BlockSet,
    pairs: np.ndarray,
    shifts: np.ndarray,
    kmesh: tuple[int, int, int],
    n_electrons: float,
    smearing: Smearing | None,
) -> DensityResult:
    """Packed D for the stored pairs; fixed occupations when ``smearing`` is None."""
    if smearing is not None:
        return _smeared([h_set], s_set, pairs, shifts, kmesh, n_electrons, smearing, degeneracy=2.0)[0]
    mesh = BlochMesh(h_set, s_set, kmesh)
    n_orbitals = h_set.n
    acc = BlockAccumulator(pairs, shifts, h_set.slices, mesh.n_k)
    n_occ = int(round(n_electrons / 2))
    band_energy, homo, lumo = 0.0, -np.inf, np.inf
    for kf, w, h, s in mesh.walk(check_overlap=True):
        eps, vectors = bloch_states(h, s, n_occ)
        band_energy += float(w @ (2.0 * eps[:, :n_occ].sum(axis=1))) / mesh.n_k
        homo = max(homo, float(eps[:, n_occ - 1].max()))
        if n_occ < n_orbitals:
            lumo = min(lumo, float(eps[:, n_occ].min()))
        acc.add_many(kf, w, 2.0 * (vectors.conj() @ vectors.transpose(0, 2, 1)), +1)
    lumo_or_none = lumo if np.isfinite(lumo) else None
    return DensityResult(acc.packed(), band_energy, homo, lumo_or_none, None, None, n_occ, mesh.min_s_eig)


def smeared_bands(
    eps_all: np.ndarray, e_fermi: float, smearing: Smearing, n_electrons: float, bands: str
) -> tuple[float, int]:
    """(largest occupation of the highest band, number of bands D needs) of the mesh's eigenvalues at E_F;
    refuses a basis whose highest band still holds part of the smearing tail (``bands`` names them)."""
    f_all = occupation((e_fermi - eps_all) / smearing.width, smearing.kind)
    top = float(np.abs(f_all[:, -1]).max())
    if top > TOP_BAND_OCCUPATION_TOLERANCE:
        raise DensityMatrixError(
            f"the highest of the {bands} bands is occupied up to {top:.2e} (per state) with {n_electrons:g} "
            f"electrons and {smearing.kind} smearing of width {smearing.width:g} Ry: the basis has too few "
            "orbitals for the smearing tail; use a larger basis (e.g. DZP or TZ2P) or a smaller degauss"
        )
    reached = np.flatnonzero(np.abs(f_all).max(axis=0) > NEGLIGIBLE_OCCUPATION)
    return top, int(reached[-1]) + 1


def spin_density_matrices(
    h_sets: list[BlockSet],
    s_set: BlockSet,
    pairs: np.ndarray,
    shifts: np.ndarray,
    kmesh: tuple[int, int, int],
    n_electrons: float,
    smearing: Smearing | None,
) -> list[DensityResult]:
    """Packed D_up and D_down of a collinear spin-polarised system: one Fermi level for both channels,
    occupations f (not 2f) per state, so that sum_R Tr((D_up + D_down) S) = N_electrons."""
    if smearing is None:
        raise DensityMatrixError(
            "a spin-polarised SCF with fixed occupations has one Fermi level per spin channel; slem builds "
            "D for nspin=2 with smearing: rerun pw.x with occupations='smearing' (e.g. smearing='mv', "
            "degauss=0.02) and starting_magnetization"
        )
    return _smeared(h_sets, s_set, pairs, shifts, kmesh, n_electrons, smearing, degeneracy=1.0)


def _smeared(
    h_sets: list[BlockSet],
    s_set: BlockSet,
    pairs: np.ndarray,
    shifts: np.ndarray,
    kmesh: tuple[int, int, int],
    n_electrons: float,
    smearing: Smearing,
    degeneracy: float,
) -> list[DensityResult]:
    """One D per channel in ``h_sets``, with a Fermi level common to all of them."""
    meshes = [BlochMesh(h_set, s_set, kmesh) for h_set in h_sets]
    n_orbitals = s_set.n
    eps_channels, weights = [], None
    for n, mesh in enumerate(meshes):
        eps_parts, weight_parts = [], []
        # S is shared, so its eigenvalues are checked on the first channel's walk only
        for _, w, h, s in mesh.walk(check_overlap=n == 0):
            eps_parts.append(bloch_states(h, s, 0)[0])
            weight_parts.append(w)
        eps_channels.append(np.concatenate(eps_parts))
        weights = np.concatenate(weight_parts)
    e_fermi = fermi_level(np.concatenate(eps_channels, axis=1), weights, n_electrons, smearing.width,
                          smearing.kind, degeneracy)
    results = []
    for mesh, eps_all in zip(meshes, eps_channels, strict=True):
        top, n_used = smeared_bands(eps_all, e_fermi, smearing, n_electrons, f"basis's {n_orbitals}")
        band_energy = 0.0
        acc = BlockAccumulator(pairs, shifts, s_set.slices, mesh.n_k)
        for kf, w, h, s in mesh.walk(check_overlap=False):
            eps, vectors = bloch_states(h, s, n_used)
            f = degeneracy * occupation((e_fermi - eps[:, :n_used]) / smearing.width, smearing.kind)
            band_energy += float(w @ (f * eps[:, :n_used]).sum(axis=1)) / mesh.n_k
            acc.add_many(kf, w, (vectors.conj() * f[:, None, :]) @ vectors.transpose(0, 2, 1), +1)
        min_s_eig = meshes[0].min_s_eig
        results.append(DensityResult(acc.packed(), band_energy, None, None, e_fermi, top, n_used, min_s_eig))
    return results
