"""From a pw.x SCF to one Frame holding H(R), S(R) and D(R) in a confined LCAO basis.

H and S are assembled pair by pair in real space (realspace.py): exact two-centre integrals for
S, the kinetic energy and <phi|beta>, the KB term from those (threecentre.py), and the local
potential by quadrature on the pp.x grid (local_potential.py). D comes from the generalised eigenvectors
of the Bloch sums (H(k), S(k)) of the stored blocks on a mesh whose supercell resolves every
stored bond (kmesh.py): D_ij(R) = (2/N_k) sum_k sum_occ c_in^* c_jn exp(i k.R), so
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

from .kmesh import auto_kmesh, check_kmesh, reduced_mesh
from .pairs import BlockAccumulator, BlockSet, pairs_within
from .radial import BOHR, RYDBERG
from .realspace import RealSpaceOperators
from .threecentre import nonlocal_blocks

HARTREE = 2 * RYDBERG
POSITION_TOLERANCE_BOHR = 1e-4
# H is stored for bonds up to r_i + r_j + x_ab: beyond r_i + r_j only the three-centre KB term
# <phi_i|beta_c> D <beta_c|phi_j> survives, and x_ab is where its worst case over the position of
# one third atom drops below H_TAIL_TOLERANCE / 2 (the factor 2 covers a second centre). S is
# exactly zero there. See docs/projection.md.
H_TAIL_TOLERANCE_EV = 1e-4
MESH_CHUNK_BYTES = 3.2e7  # H(k) (complex) of the k-points diagonalised together stays below this
BATCHED_EIGH_MAX_SIZE = 128  # orbitals; larger generalised eigenproblems are solved k by k


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


def _occupied_states(h: np.ndarray, s: np.ndarray, n_occ: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (n_k, n) of H c = e S c for a stack of k-points and the first ``n_occ``
    eigenvectors (n_k, n, n_occ), normalised to c^H S c = 1.

    Small matrices go through numpy's batched routines (S = L L^H, then the standard problem
    L^-1 H L^-H y = e y, c = L^-H y): one call for all k instead of one LAPACK call per k. Large
    ones go one by one through LAPACK's generalised solver, which is faster there."""
    if h.shape[-1] > BATCHED_EIGH_MAX_SIZE:
        pairs = [scipy.linalg.eigh(a, b) for a, b in zip(h, s, strict=True)]
        return np.stack([e for e, _ in pairs]), np.stack([v[:, :n_occ] for _, v in pairs])
    inverse = np.linalg.inv(np.linalg.cholesky(s))
    inverse_h = inverse.conj().transpose(0, 2, 1)
    eps, y = np.linalg.eigh(inverse @ h @ inverse_h)
    return eps, inverse_h @ y[:, :, :n_occ]


def project(
    scf: QeScf,
    potential: LocalPotential,
    bases: dict[str, ElementBasis],
    upfs: dict[str, Upf],
    kmesh: tuple[int, int, int] | None = None,
) -> ProjectionResult:
    """Project the SCF's Kohn-Sham Hamiltonian onto ``bases`` (keyed by element).

    ``upfs`` is keyed by the SCF's species labels. ``kmesh=None`` picks the alias-free mesh
    on which D is computed."""
    started, cpu_started = time.perf_counter(), time.process_time()
    _check_inputs(scf, potential, bases, upfs)
    elements = {label: upfs[label].element for label in scf.species}
    cell, positions, symbols = scf.cell_bohr, scf.positions_bohr, scf.symbols
    radii = np.array([bases[elements[s]].cutoff / BOHR for s in symbols])
    beta_radii = np.array([upfs[s].max_projector_radius for s in symbols])
    ops = RealSpaceOperators(
        {s: bases[elements[s]] for s in scf.species},
        {s: upfs[s] for s in scf.species},
        max(2 * radii.max() + 2 * beta_radii.max(), radii.max() + beta_radii.max()),
    )
    # The scan for (b, a) is that for (a, b) seen from the bond centre (inversion and a half turn
    # about the bond only flip signs of block elements), so each unordered pair is scanned once.
    reach = {}
    for n, a in enumerate(scf.species):
        for b in scf.species[n:]:
            reach[a, b] = reach[b, a] = ops.nonlocal_reach(a, b, 0.5 * H_TAIL_TOLERANCE_EV / RYDBERG)
    # CPU seconds per step: on a shared machine they do not follow the load as wall times do.
    timings = {"tables": time.process_time() - cpu_started}

    def keys_of(pairs: np.ndarray, shifts: np.ndarray) -> list:
        return [(int(i), int(j), *map(int, r)) for (i, j), r in zip(pairs, shifts, strict=True)]

    pairs, shifts, lengths = pairs_within(positions, cell, radii, extra=max(reach.values()))
    within = lengths < np.array(
        [radii[i] + radii[j] + reach[(symbols[i], symbols[j])] for i, j in pairs], dtype=np.float64
    ).reshape(-1)
    pairs, shifts, lengths = pairs[within], shifts[within], lengths[within]
    keys = keys_of(pairs, shifts)
    overlapping = lengths < radii[pairs[:, 0]] + radii[pairs[:, 1]]
    near_keys = [k for k, inside in zip(keys, overlapping, strict=True) if inside]
    wide_pairs, wide_shifts, _ = pairs_within(positions, cell, radii, extra=2 * beta_radii.max())
    proj_pairs, proj_shifts, _ = pairs_within(positions, cell, radii, radii_j=beta_radii)

    s_all = ops.two_centre("S", keys, cell, positions, symbols)
    kinetic = ops.two_centre("T", near_keys, cell, positions, symbols)
    projections = ops.two_centre("P", keys_of(proj_pairs, proj_shifts), cell, positions, symbols)
    timings["two_centre"] = time.process_time() - cpu_started - timings["tables"]
    local = ops.local(near_keys, cell, positions, symbols, potential.values_ry)
    timings["local_potential"] = time.process_time() - cpu_started - sum(timings.values())
    dions = [ops.dion[s] for s in symbols]
    nonlocal_part = nonlocal_blocks(projections, dions, wanted=set(keys_of(wide_pairs, wide_shifts)))
    # S between non-overlapping spheres is zero analytically; the table's value is quadrature noise.
    max_s_beyond = max((float(np.abs(s_all[k]).max()) for k in keys if k not in kinetic), default=0.0)
    s_blocks, h_blocks = {}, {}
    for key in keys:
        n_i, n_j = s_all[key].shape
        s_blocks[key] = s_all[key] if key in kinetic else np.zeros((n_i, n_j))
        h = kinetic[key] + local[key] if key in kinetic else np.zeros((n_i, n_j))
        h_blocks[key] = h + nonlocal_part.get(key, 0.0)
    stored = set(keys)
    max_h_beyond = max(
        (float(np.abs(b).max()) for k, b in nonlocal_part.items() if k not in stored), default=0.0
    )
    timings["nonlocal"] = time.process_time() - cpu_started - sum(timings.values())

    max_range = float(lengths.max()) if len(lengths) else 0.0
    if kmesh is None:
        kmesh = auto_kmesh(cell, max_range)
    problems = check_kmesh(cell, kmesh, max_range)
    slices, start = [], 0
    for s in symbols:
        n = sum(2 * o.l + 1 for o in bases[elements[s]].orbitals)
        slices.append(slice(start, start + n))
        start += n
    n_orbitals = start
    n_occ = int(round(scf.n_electrons / 2))
    if n_occ > n_orbitals:
        raise ProjectionError(f"{n_occ} occupied bands but only {n_orbitals} orbitals in the basis")
    h_set, s_set = BlockSet(h_blocks, slices), BlockSet(s_blocks, slices)
    k_frac, weights = reduced_mesh(kmesh)
    n_k = float(np.prod(kmesh))
    acc_d = BlockAccumulator(pairs, shifts, slices, n_k)
    band_energy, homo, lumo, min_s_eig = 0.0, -np.inf, np.inf, np.inf
    # exp(i k.R) = +-1 at time-reversal-invariant k: real matrices there, a 4x cheaper eigh.
    real = np.array([np.allclose(2 * kf, np.round(2 * kf)) for kf in k_frac], dtype=bool)
    chunk = max(1, int(MESH_CHUNK_BYTES // (16 * n_orbitals**2)))
    for subset in (np.flatnonzero(real), np.flatnonzero(~real)):
        for part in np.array_split(subset, -(-len(subset) // chunk)) if len(subset) else []:
            kf, w = k_frac[part], weights[part]
            overlap, hamiltonian = s_set.at_many(kf), h_set.at_many(kf)
            if real[part[0]]:
                overlap, hamiltonian = overlap.real.copy(), hamiltonian.real.copy()
            s_eigs = np.linalg.eigvalsh(overlap)[:, 0]
            min_s_eig = min(min_s_eig, float(s_eigs.min()))
            if s_eigs.min() < 1e-8:
                raise ProjectionError(
                    f"the basis is linearly dependent (smallest overlap eigenvalue {s_eigs.min():.2e})"
                )
            eps, occ = _occupied_states(hamiltonian, overlap, n_occ)
            band_energy += float(w @ (2.0 * eps[:, :n_occ].sum(axis=1))) / n_k
            homo = max(homo, float(eps[:, n_occ - 1].max()))
            if n_occ < n_orbitals:
                lumo = min(lumo, float(eps[:, n_occ].min()))
            acc_d.add_many(kf, w, 2.0 * (occ.conj() @ occ.transpose(0, 2, 1)), +1)
    timings["density_matrix"] = time.process_time() - cpu_started - sum(timings.values())

    h_packed = np.concatenate([h_blocks[key].ravel() for key in keys])
    s_packed = np.concatenate([s_blocks[key].ravel() for key in keys])
    operators = {"H": h_packed * RYDBERG, "S": s_packed, "D": acc_d.packed()}
    element_list = [elements[s] for s in symbols]
    basis_strings = {elements[s]: bases[elements[s]].shells for s in scf.species}
    frame = Frame(
        numbers=[atomic_numbers[s] for s in element_list],
        positions=positions * BOHR,
        cell=cell * BOHR,
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
        "h_range_extra_angstrom": {
            f"{elements[a]}-{elements[b]}": round(x * BOHR, 3) for (a, b), x in reach.items()
        },
        "h_tail_tolerance_ev": H_TAIL_TOLERANCE_EV,
        "min_overlap_eigenvalue": min_s_eig,
        "kmesh": list(map(int, kmesh)),
        "kmesh_alias_free": not problems,
        "kmesh_problems": problems,
        "n_pairs": len(pairs),
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "cpu_seconds_by_step": {k: round(v, 3) for k, v in timings.items()},
    }
    frame.metadata = {
        **checks,
        "source": "slem project (real-space projection of a pw.x SCF)",
        "ecutwfc_ry": 2 * scf.ecutwfc_ha,
        "ecutrho_ry": 2 * scf.ecutrho_ha,
        "fft_grid": list(scf.fft_grid),
        "basis_label": {e: b.label for e, b in bases.items() if e in basis_strings},
        "basis_shells": basis_strings,
        "cutoff_radii_angstrom": {elements[s]: bases[elements[s]].cutoff for s in scf.species},
        "projector_radius_angstrom": {elements[s]: upfs[s].max_projector_radius * BOHR for s in scf.species},
        "pair_range": "S: r_i + r_j (exactly zero beyond); H: r_i + r_j + h_range_extra_angstrom[pair]",
        "method": "two-centre S, T, <phi|beta> (radial Fourier + Gaunt); V_loc on the pp.x grid",
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
