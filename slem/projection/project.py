"""From a pw.x SCF to one Frame holding H(R), S(R) and D(R) in a confined LCAO basis.

H and S come from Galerkin projection (galerkin.py) on a k-mesh chosen so that their
transform to real space does not alias (kmesh.py). D comes from the generalised eigenvectors
of (H(k), S(k)) on the same mesh: D_ij(R) = (2/N_k) sum_k sum_occ c_in^* c_jn exp(i k.R), so
that sum_R sum_ij D_ij(R) S_ij(R) = N_electrons and sum_R sum_ij D_ij(R) H_ij(R) is the band
energy (2/N_k) sum_k sum_occ eps_nk of the LCAO Hamiltonian.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from ase.data import atomic_numbers

from slem.basis.orbital import ElementBasis
from slem.data.frame import Frame
from slem.qe.potential import LocalPotential
from slem.qe.upf import Upf
from slem.qe.xml import QeScf

from .galerkin import GalerkinProjector, species_data
from .kmesh import auto_kmesh, check_kmesh, perpendicular_heights, reduced_mesh
from .pairs import BlockAccumulator, pairs_within
from .radial import BOHR, RYDBERG
from .threecentre import nonlocal_blocks

HARTREE = 2 * RYDBERG
POSITION_TOLERANCE_BOHR = 1e-4


class ProjectionError(ValueError):
    """The inputs of a projection are inconsistent or describe an unsupported calculation."""


@dataclass
class ProjectionResult:
    frame: Frame
    checks: dict = field(default_factory=dict)


def _check_inputs(
    scf: QeScf, potential: LocalPotential, bases: dict[str, ElementBasis], upfs: dict[str, Upf]
):
    if scf.lsda or scf.noncolin:
        raise ProjectionError(
            "spin-polarised or non-collinear SCFs are not supported; rerun pw.x with nspin=1"
        )
    if scf.occupations != "fixed":
        raise ProjectionError(
            f"occupations='{scf.occupations}' in the SCF; the density matrix is built for insulators only: "
            "rerun pw.x with occupations='fixed'"
        )
    if abs(scf.n_electrons / 2 - round(scf.n_electrons / 2)) > 1e-8:
        raise ProjectionError(
            f"{scf.n_electrons} electrons is not an even number; cannot fill bands pairwise"
        )
    if tuple(potential.values_ry.shape) != tuple(scf.fft_grid):
        raise ProjectionError(
            f"potential grid {potential.values_ry.shape} differs from the SCF's dense FFT grid "
            f"{scf.fft_grid}: "
            "the potential file does not belong to this SCF"
        )
    if potential.positions_bohr.shape != scf.positions_bohr.shape or (
        np.abs(potential.positions_bohr - scf.positions_bohr).max() > POSITION_TOLERANCE_BOHR
        or np.abs(potential.cell_bohr - scf.cell_bohr).max() > POSITION_TOLERANCE_BOHR
    ):
        raise ProjectionError(
            "the potential file's cell or atoms differ from the SCF XML: they are not one run"
        )
    for label in scf.species:
        if label not in upfs:
            raise ProjectionError(f"no pseudopotential given for species {label!r}")
        element = upfs[label].element
        if element not in bases:
            raise ProjectionError(f"the basis file has no {element} basis; build it with 'slem basis'")
        expected = bases[element].upf_md5
        if expected and expected != upfs[label].md5:
            raise ProjectionError(
                f"the {element} basis was built from another pseudopotential ({bases[element].upf_name}, md5 "
                f"{expected}) than the SCF used ({upfs[label].path.name}, md5 {upfs[label].md5}); "
                "rebuild the basis"
            )


def project(
    scf: QeScf,
    potential: LocalPotential,
    bases: dict[str, ElementBasis],
    upfs: dict[str, Upf],
    kmesh: tuple[int, int, int] | None = None,
) -> ProjectionResult:
    """Project the SCF's Kohn-Sham Hamiltonian onto ``bases`` (keyed by element).

    ``upfs`` is keyed by the SCF's species labels. ``kmesh=None`` picks the alias-free mesh."""
    started = time.perf_counter()
    _check_inputs(scf, potential, bases, upfs)
    ecut_ry = 2 * scf.ecutwfc_ha
    qmax = np.sqrt(ecut_ry) + 0.1
    elements = {label: upfs[label].element for label in scf.species}
    species = {label: species_data(bases[elements[label]], upfs[label], qmax) for label in scf.species}
    projector = GalerkinProjector(
        scf.cell_bohr, scf.positions_bohr, scf.symbols, potential.values_ry, ecut_ry, species
    )

    radii = np.array([species[s].cutoff_bohr for s in scf.symbols])
    beta_radii = np.array([species[s].beta_radius_bohr for s in scf.symbols])
    # T + V_loc reach r_i + r_j and <phi|beta> reaches r_i + r_beta; the KB term, which reaches
    # r_i + r_j + 2 r_beta, is assembled in real space from <phi|beta> (threecentre.py).
    max_range = max(2 * radii.max(), radii.max() + beta_radii.max())
    if kmesh is None:
        kmesh = auto_kmesh(scf.cell_bohr, max_range)
    problems = check_kmesh(scf.cell_bohr, kmesh, max_range)

    pairs, shifts, lengths = pairs_within(scf.positions_bohr, scf.cell_bohr, radii)
    wide_pairs, wide_shifts, wide_lengths = pairs_within(
        scf.positions_bohr, scf.cell_bohr, radii, extra=2 * beta_radii.max()
    )
    # Bonds just beyond r_i + r_j that the mesh still resolves without aliasing: there the
    # dropped S and T + V_loc (plane-wave truncation tails only) are measured.
    alias_free = (perpendicular_heights(scf.cell_bohr) * np.asarray(kmesh)).min() - 2 * radii.max()
    probe = (wide_lengths >= radii[wide_pairs[:, 0]] + radii[wide_pairs[:, 1]]) & (wide_lengths < alias_free)
    proj_pairs, proj_shifts, _ = pairs_within(scf.positions_bohr, scf.cell_bohr, radii, radii_j=beta_radii)
    k_frac, weights = reduced_mesh(kmesh)
    n_k = float(np.prod(kmesh))
    recip = 2 * np.pi * np.linalg.inv(scf.cell_bohr).T
    slices = projector.orbital_slices
    acc = {name: BlockAccumulator(pairs, shifts, slices, n_k) for name in "HSD"}
    probe_acc = {name: BlockAccumulator(wide_pairs[probe], wide_shifts[probe], slices, n_k) for name in "HS"}
    acc_p = BlockAccumulator(proj_pairs, proj_shifts, slices, n_k, col_slices=projector.projector_slices)
    n_occ = int(round(scf.n_electrons / 2))
    if n_occ > projector.n_orbitals:
        raise ProjectionError(f"{n_occ} occupied bands but only {projector.n_orbitals} orbitals in the basis")
    band_energy, homo, lumo, min_s_eig = 0.0, -np.inf, np.inf, np.inf
    for kf, w in zip(k_frac, weights, strict=True):
        overlap, local, phi_beta, dion = projector.matrices_split(kf @ recip)
        hamiltonian = local + phi_beta @ dion @ phi_beta.conj().T
        hamiltonian = 0.5 * (hamiltonian + hamiltonian.conj().T)
        s_eigs = np.linalg.eigvalsh(overlap)
        min_s_eig = min(min_s_eig, float(s_eigs[0]))
        if s_eigs[0] < 1e-8:
            raise ProjectionError(
                f"the basis is linearly dependent (smallest overlap eigenvalue {s_eigs[0]:.2e})"
            )
        eps, vecs = scipy.linalg.eigh(hamiltonian, overlap)
        occ = vecs[:, :n_occ]
        band_energy += w * 2.0 * eps[:n_occ].sum() / n_k
        homo = max(homo, eps[n_occ - 1])
        if n_occ < len(eps):
            lumo = min(lumo, eps[n_occ])
        acc["H"].add(kf, w, local, -1)
        acc["S"].add(kf, w, overlap, -1)
        acc["D"].add(kf, w, 2.0 * (occ.conj() @ occ.T), +1)
        acc_p.add(kf, w, phi_beta, -1)
        probe_acc["H"].add(kf, w, local, -1)
        probe_acc["S"].add(kf, w, overlap, -1)

    dions = [species[s].dion_ry for s in scf.symbols]
    wide_keys = {(int(i), int(j), *map(int, r)) for (i, j), r in zip(wide_pairs, wide_shifts, strict=True)}
    nonlocal_part = nonlocal_blocks(acc_p.block_dict(), dions, wanted=wide_keys)
    h_blocks = acc["H"].block_dict()
    for key, block in nonlocal_part.items():
        if key in h_blocks:
            h_blocks[key] += block
    stored_keys = set(h_blocks)
    beyond = {key: b for key, b in nonlocal_part.items() if key not in stored_keys}
    for key, block in probe_acc["H"].block_dict().items():
        beyond[key] = beyond.get(key, 0.0) + block
    max_h_beyond = max((float(np.abs(b).max()) for b in beyond.values()), default=0.0)
    max_s_beyond = float(probe_acc["S"].block_max().max()) if probe.any() else 0.0
    keys = [(int(i), int(j), *map(int, r)) for (i, j), r in zip(pairs, shifts, strict=True)]
    h_packed = np.concatenate([h_blocks[key].ravel() for key in keys])
    operators = {"H": h_packed * RYDBERG, "S": acc["S"].packed(), "D": acc["D"].packed()}
    symbols = [elements[s] for s in scf.symbols]
    basis_strings = {elements[s]: bases[elements[s]].shells for s in scf.species}
    frame = Frame(
        numbers=[atomic_numbers[s] for s in symbols],
        positions=scf.positions_bohr * BOHR,
        cell=scf.cell_bohr * BOHR,
        pbc=[True, True, True],
        basis=basis_strings,
        pairs=pairs,
        cell_shifts=shifts,
        operators=operators,
    )
    tr_ds = float(np.dot(operators["D"], operators["S"]))
    tr_dh = float(np.dot(operators["D"], operators["H"]))
    checks = {
        "n_electrons": float(scf.n_electrons),
        "sum_tr_ds": tr_ds,
        "sum_tr_ds_error": tr_ds - float(scf.n_electrons),
        "sum_tr_dh_ev": tr_dh,
        "band_energy_ev": float(band_energy * RYDBERG),
        "homo_ev": float(homo * RYDBERG),
        "lumo_ev": float(lumo * RYDBERG) if np.isfinite(lumo) else None,
        "qe_homo_ev": scf.homo_ha * HARTREE if scf.homo_ha is not None else None,
        "max_h_beyond_ev": max_h_beyond * RYDBERG,
        "max_s_beyond": max_s_beyond,
        "beyond_probe_max_bond_angstrom": float(alias_free * BOHR),
        "min_overlap_eigenvalue": min_s_eig,
        "kmesh": list(map(int, kmesh)),
        "kmesh_alias_free": not problems,
        "kmesh_problems": problems,
        "n_pairs": len(pairs),
        "seconds": time.perf_counter() - started,
    }
    frame.metadata = {
        **checks,
        "source": "slem project (Galerkin projection of a pw.x SCF)",
        "ecutwfc_ry": ecut_ry,
        "ecutrho_ry": 2 * scf.ecutrho_ha,
        "fft_grid": list(scf.fft_grid),
        "basis_label": {e: b.label for e, b in bases.items() if e in basis_strings},
        "basis_shells": basis_strings,
        "cutoff_radii_angstrom": {elements[s]: species[s].cutoff_bohr * BOHR for s in scf.species},
        "projector_radius_angstrom": {elements[s]: species[s].beta_radius_bohr * BOHR for s in scf.species},
        "scf_converged": bool(scf.converged),
        "qe_energies_ev": {k: v * HARTREE for k, v in scf.energies_ha.items()},
        "qe_fermi_energy_ev": scf.fermi_energy_ha * HARTREE if scf.fermi_energy_ha is not None else None,
        "qe_functional": scf.functional,
        "pseudo_md5": {upfs[s].path.name: upfs[s].md5 for s in scf.species},
        "basis_upf_md5": {e: b.upf_md5 for e, b in bases.items() if e in basis_strings},
        "xml_md5": scf.md5,
        "units": "H: eV, S and D: dimensionless, lengths: Angstrom",
    }
    return ProjectionResult(frame=frame, checks=checks)
