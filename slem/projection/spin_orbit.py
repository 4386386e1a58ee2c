"""D of a non-magnetic spin-orbit SCF from the spinor Bloch sums of the projected H, H_so and S.

The spinor H(k) = H(k) (x) 1 + i sum_a H_a(k) (x) sigma_a (slem.spinor) and S(k) (x) 1 give bands that
each hold one electron. Their density operator rho(k) = sum_n f_nk c_n c_n^H has the same time-reversal
form, rho = p_0 (x) 1 + i sum_a p_a (x) sigma_a, and D(R) stores it as real parts in the transposed
convention of density.py: D = 2 P_0 and D_so_a = 2 P_a, with P(R) = (1/N_k) sum_k exp(i k.R) p(k)^*. Then

    sum_R sum_ij D_ij S_ij = N_electrons,  sum_R sum_ij (D_ij H_ij + sum_a D_so_a,ij H_so_a,ij) = band energy,

elementwise as for every other frame. Time reversal pairs k with -k (p(-k) = p(k)^*), so the reduced mesh of
density.py serves here too (its BlochMesh builds the spinor H(k), S(k)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slem.qe.upf import Upf
from slem.spinor import spinor_parts

from .density import (
    BlochMesh,
    DensityResult,
    Smearing,
    bloch_states,
    smeared_bands,
)
from .occupations import fermi_level, occupation
from .pairs import BlockAccumulator, BlockSet
from .realspace import expanded_spin_orbit_dion
from .threecentre import nonlocal_blocks


@dataclass
class SpinorDensity:
    charge: DensityResult  # D: its packed blocks and the band/level summary of the spinor bands
    spin_orbit: list[np.ndarray]  # packed D_so_x, D_so_y, D_so_z


def spin_orbit_parts(projections: dict, upfs: list[Upf], dions: list[np.ndarray], wanted: set) -> list[dict]:
    """Blocks of the three real spin-orbit KB operators K_a (Ry), from each atom's file (none: scalar)."""
    matrices = [
        expanded_spin_orbit_dion(u) if u.spin_orbit else np.zeros((3, *d.shape))
        for u, d in zip(upfs, dions, strict=True)
    ]
    return [nonlocal_blocks(projections, [m[a] for m in matrices], wanted=wanted) for a in range(3)]


def spinor_density(
    h_set: BlockSet,
    so_sets: list[BlockSet],
    s_set: BlockSet,
    pairs: np.ndarray,
    shifts: np.ndarray,
    kmesh: tuple[int, int, int],
    n_electrons: float,
    smearing: Smearing | None,
) -> SpinorDensity:
    """D and D_so_a for the stored pairs: the lowest N spinor bands (fixed occupations) or pw.x's smearing
    at a Fermi level solved on these bands (one electron per band)."""
    mesh = BlochMesh(h_set, s_set, kmesh, so_sets)
    n_bands = 2 * s_set.n
    e_fermi, top, homo, lumo = None, None, -np.inf, np.inf
    if smearing is None:
        n_used = int(round(n_electrons))
    else:
        walked = [(w, bloch_states(h, s, 0)[0]) for _, w, h, s in mesh.walk(check_overlap=True)]
        weights, eps_all = (np.concatenate(parts) for parts in zip(*walked, strict=True))
        e_fermi = fermi_level(eps_all, weights, n_electrons, smearing.width, smearing.kind, degeneracy=1.0)
        top, n_used = smeared_bands(eps_all, e_fermi, smearing, n_electrons, f"{n_bands} spinor")
    accumulators = [BlockAccumulator(pairs, shifts, s_set.slices, mesh.n_k) for _ in range(4)]
    band_energy = 0.0
    for kf, w, h, s in mesh.walk(check_overlap=smearing is None):
        eps, vectors = bloch_states(h, s, n_used)
        if smearing is None:
            f = np.ones((len(kf), n_used))
            homo = max(homo, float(eps[:, n_used - 1].max()))
            if n_used < n_bands:
                lumo = min(lumo, float(eps[:, n_used].min()))
        else:
            f = occupation((e_fermi - eps[:, :n_used]) / smearing.width, smearing.kind)
        band_energy += float(w @ (f * eps[:, :n_used]).sum(axis=1)) / mesh.n_k
        rho = (vectors * f[:, None, :]) @ vectors.conj().transpose(0, 2, 1)
        scalar, vector = spinor_parts(rho)
        for accumulator, part in zip(accumulators, [scalar, *vector], strict=True):
            accumulator.add_many(kf, w, 2.0 * part.conj(), +1)
    charge = DensityResult(
        accumulators[0].packed(),
        band_energy,
        homo if smearing is None else None,
        (lumo if np.isfinite(lumo) else None) if smearing is None else None,
        e_fermi,
        top,
        n_used,
        mesh.min_s_eig,
    )
    return SpinorDensity(charge, [a.packed() for a in accumulators[1:]])
