"""From a pw.x SCF to one Frame holding H(R), S(R) and D(R) in a confined LCAO basis.

H and S are assembled pair by pair in real space (realspace.py): exact two-centre integrals for
S, the kinetic energy and <phi|beta>, the KB term from those (threecentre.py), and the local
potential by quadrature on the pp.x grid (local_potential.py). D comes from the generalised eigenvectors
of the Bloch sums (H(k), S(k)) of the stored blocks on a mesh whose supercell resolves every
stored bond (kmesh.py, density.py): D_ij(R) = (1/N_k) sum_k sum_n 2 f_nk c_in^* c_jn exp(i k.R) with
f = 1 for the lowest N/2 bands (fixed occupations) or pw.x's smearing function at a Fermi level solved on
these LCAO bands, so that sum_R sum_ij D_ij(R) S_ij(R) = N_electrons and sum_R sum_ij D_ij(R) H_ij(R) is the
(smeared) band energy of the LCAO Hamiltonian. An nspin=2 SCF gives H and D per spin channel, from the
channels' local potentials, with one S and one Fermi level (docs/spin.md). A non-magnetic spin-orbit SCF
(noncolin, lspinorb) with fully relativistic UPFs adds the real spin-orbit parts H_so_a of the spinor H and
D_so_a of its density matrix (spin_orbit.py, docs/spin-orbit.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_numbers

from slem.basis.orbital import ElementBasis
from slem.basis.shells import semicore_electrons
from slem.data.frame import Frame
from slem.data.operators import SPIN_CHANNELS, SPIN_ORBIT_AXES, channel_names, spin_orbit_names
from slem.qe.potential import LocalPotential
from slem.qe.relativistic import j_average
from slem.qe.upf import Upf
from slem.qe.xml import QeScf
from slem.units import HARTREE_EV, RYDBERG_EV

from .density import DensityMatrixError, density_matrix, spin_density_matrices
from .errors import ProjectionError
from .kmesh import auto_kmesh, check_kmesh, normal_reach
from .pairs import BlockSet, pairs_within
from .radial import BOHR
from .realspace import RealSpaceOperators
from .scf_checks import check_inputs, check_occupations
from .spin import magnetization_checks
from .spin_orbit import spin_orbit_parts, spinor_density
from .threecentre import nonlocal_blocks

# H is stored for bonds up to r_i + r_j + x_ab: beyond r_i + r_j only the three-centre KB term
# <phi_i|beta_c> D <beta_c|phi_j> survives, and x_ab is where its worst case over the position of
# one third atom drops below H_TAIL_TOLERANCE / 2 (the factor 2 covers a second centre). S is
# exactly zero there. See docs/projection.md.
H_TAIL_TOLERANCE_EV = 1e-4


def _ev(value_ry: float | None) -> float | None:
    return None if value_ry is None else float(value_ry * RYDBERG_EV)


@dataclass
class ProjectionResult:
    frame: Frame
    checks: dict = field(default_factory=dict)


def project(
    scf: QeScf,
    potential: LocalPotential | list[LocalPotential],
    bases: dict[str, ElementBasis],
    upfs: dict[str, Upf],
    kmesh: tuple[int, int, int] | None = None,
    allow_unconverged: bool = False,
) -> ProjectionResult:
    """Project the SCF's Kohn-Sham Hamiltonian onto ``bases`` (keyed by element).

    ``potential`` is pp.x's total local potential, or for an nspin=2 SCF the list [up, down]; such a
    frame holds H_up, H_down, D_up and D_down beside the shared S. ``upfs`` is keyed by the SCF's
    species labels. ``kmesh=None`` picks the alias-free mesh
    on which D is computed. An unconverged SCF is refused unless ``allow_unconverged``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    potentials = [potential] if isinstance(potential, LocalPotential) else list(potential)
    check_inputs(scf, potentials, bases, upfs)
    smearing = check_occupations(scf, allow_unconverged)
    relativistic = upfs
    upfs = {label: j_average(upf) for label, upf in upfs.items()}
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
            reach[a, b] = reach[b, a] = ops.nonlocal_reach(a, b, 0.5 * H_TAIL_TOLERANCE_EV / RYDBERG_EV)
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
    locals_ = [ops.local(near_keys, cell, positions, symbols, p.values_ry) for p in potentials]
    timings["local_potential"] = time.process_time() - cpu_started - sum(timings.values())
    dions = [ops.dion[s] for s in symbols]
    wanted = set(keys_of(wide_pairs, wide_shifts))
    nonlocal_part = nonlocal_blocks(projections, dions, wanted=wanted)
    so_upfs = [relativistic[s] for s in symbols]
    so_parts = spin_orbit_parts(projections, so_upfs, dions, wanted) if scf.spin_orbit else []
    # S between non-overlapping spheres is zero analytically; the table's value is quadrature noise.
    max_s_beyond = max((float(np.abs(s_all[k]).max()) for k in keys if k not in kinetic), default=0.0)
    s_blocks, h_channels, so_blocks = {}, [{} for _ in locals_], [{} for _ in so_parts]
    for key in keys:
        n_i, n_j = s_all[key].shape
        s_blocks[key] = s_all[key] if key in kinetic else np.zeros((n_i, n_j))
        for h_blocks, local in zip(h_channels, locals_, strict=True):
            h = kinetic[key] + local[key] if key in kinetic else np.zeros((n_i, n_j))
            h_blocks[key] = h + nonlocal_part.get(key, 0.0)
        for blocks, part in zip(so_blocks, so_parts, strict=True):
            blocks[key] = part.get(key, np.zeros((n_i, n_j)))
    stored = set(keys)
    max_h_beyond = max(
        (float(np.abs(b).max()) for part in [nonlocal_part, *so_parts] for k, b in part.items()
         if k not in stored),
        default=0.0,
    )
    timings["nonlocal"] = time.process_time() - cpu_started - sum(timings.values())

    max_range = float(lengths.max()) if len(lengths) else 0.0
    bond_reach = normal_reach(cell, positions[pairs[:, 1]] + shifts @ cell - positions[pairs[:, 0]])
    if kmesh is None:
        kmesh = auto_kmesh(cell, max_range, bond_reach)
    problems = check_kmesh(cell, kmesh, max_range, bond_reach)
    slices, start = [], 0
    for s in symbols:
        n = sum(2 * o.l + 1 for o in bases[elements[s]].orbitals)
        slices.append(slice(start, start + n))
        start += n
    n_orbitals = start
    if n_orbitals < scf.n_electrons / 2 or (smearing is not None and n_orbitals <= scf.n_electrons / 2):
        raise ProjectionError(
            f"{scf.n_electrons:g} electrons need more than the basis's {n_orbitals} orbitals"
            + (" (smearing needs empty bands above E_F)" if smearing is not None else "")
            + ": use a larger basis (e.g. DZP or TZ2P)"
        )
    h_sets, s_set = [BlockSet(h, slices) for h in h_channels], BlockSet(s_blocks, slices)
    so_density = None
    try:
        if scf.spin_orbit:
            so_sets = [BlockSet(b, slices) for b in so_blocks]
            so_density = spinor_density(
                h_sets[0], so_sets, s_set, pairs, shifts, kmesh, scf.n_electrons, smearing
            )
            densities = [so_density.charge]
        elif scf.lsda:
            densities = spin_density_matrices(h_sets, s_set, pairs, shifts, kmesh, scf.n_electrons, smearing)
        else:
            densities = [density_matrix(h_sets[0], s_set, pairs, shifts, kmesh, scf.n_electrons, smearing)]
    except (DensityMatrixError, ValueError) as exc:
        raise ProjectionError(str(exc)) from exc
    density = densities[0]
    # pw.x's own levels decide metallicity (check_occupations). Without its empty bands only the LCAO
    # bands are left, and those can overlap for reasons of the reference itself (a hot MD frame whose SCF
    # sampled one k-point, a minimal basis), so they give a warning, not a refusal.
    overlap_ev = None
    if smearing is None and density.lumo is not None and density.lumo <= density.homo:
        overlap_ev = float((density.homo - density.lumo) * RYDBERG_EV)
    timings["density_matrix"] = time.process_time() - cpu_started - sum(timings.values())

    s_packed = np.concatenate([s_blocks[key].ravel() for key in keys])
    h_packed = [np.concatenate([h[key].ravel() for key in keys]) * RYDBERG_EV for h in h_channels]
    if scf.lsda:
        operators = {"S": s_packed}
        for channel, h, d in zip(SPIN_CHANNELS, h_packed, densities, strict=True):
            operators[f"H_{channel}"], operators[f"D_{channel}"] = h, d.packed
        spin_checks = magnetization_checks(scf, operators)
    else:
        operators, spin_checks = {"H": h_packed[0], "S": s_packed, "D": density.packed}, {}
    if so_density is not None:
        for name, blocks, d in zip(SPIN_ORBIT_AXES, so_blocks, so_density.spin_orbit, strict=True):
            operators[f"H_so_{name}"] = np.concatenate([blocks[key].ravel() for key in keys]) * RYDBERG_EV
            operators[f"D_so_{name}"] = d
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

    tr_ds = sum(float(np.dot(operators[d], operators["S"])) for d in channel_names(operators, "D"))
    fermi = density.fermi_energy if smearing is not None else density.homo
    # pw.x writes fermi_energy with smearing and highestOccupiedLevel with fixed occupations
    qe_fermi = scf.fermi_energy_ha if scf.fermi_energy_ha is not None else scf.homo_ha
    qe_fermi = qe_fermi * HARTREE_EV if qe_fermi is not None else None
    tr_dh = sum(
        float(np.dot(operators[d], operators[h]))
        for d, h in zip(
            channel_names(operators, "D") + spin_orbit_names("D") * bool(so_parts),
            channel_names(operators, "H") + spin_orbit_names("H") * bool(so_parts),
            strict=True,
        )
    )
    checks = {
        "n_electrons": float(scf.n_electrons),
        "sum_tr_ds": tr_ds,
        "sum_tr_ds_error": tr_ds - float(scf.n_electrons),
        "sum_tr_dh_ev": tr_dh,
        "band_energy_ev": float(sum(d.band_energy for d in densities) * RYDBERG_EV),
        "homo_ev": _ev(density.homo),
        "lumo_ev": _ev(density.lumo),
        "qe_homo_ev": scf.homo_ha * HARTREE_EV if scf.homo_ha is not None else None,
        "occupations": scf.occupations,
        "smearing": scf.smearing,
        "degauss_ev": scf.degauss_ha * HARTREE_EV if smearing is not None else None,
        # the LCAO Fermi level: solved on the mesh's LCAO bands with smearing; the LCAO HOMO with fixed
        # occupations, as pw.x reports highestOccupiedLevel there
        "fermi_energy_ev": _ev(fermi),
        "qe_fermi_energy_ev": qe_fermi,
        "fermi_energy_difference_ev": None if qe_fermi is None else _ev(fermi) - qe_fermi,
        "top_band_occupation": None if smearing is None else max(d.top_band_occupation for d in densities),
        "bands_in_density": max(d.bands_in_density for d in densities),
        "n_spin": scf.n_spin,
        "spin_orbit": bool(scf.spin_orbit),
        **spin_checks,
        "max_h_beyond_ev": max_h_beyond * RYDBERG_EV,
        "max_s_beyond": max_s_beyond,
        "h_range_extra_angstrom": {
            f"{elements[a]}-{elements[b]}": round(x * BOHR, 3) for (a, b), x in reach.items()
        },
        "h_tail_tolerance_ev": H_TAIL_TOLERANCE_EV,
        "min_overlap_eigenvalue": density.min_overlap_eigenvalue,
        "kmesh": list(map(int, kmesh)),
        "kmesh_alias_free": not problems,
        "kmesh_problems": problems,
        "lcao_band_overlap_ev": overlap_ev,
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
        # the lowest bands of an insulator; validation reports them apart from the valence bands
        "semicore_bands": int(round(sum(semicore_electrons(bases[e].params) for e in element_list) / 2)),
        "cutoff_radii_angstrom": {elements[s]: bases[elements[s]].cutoff for s in scf.species},
        "projector_radius_angstrom": {elements[s]: upfs[s].max_projector_radius * BOHR for s in scf.species},
        "pair_range": "S: r_i + r_j (exactly zero beyond); H: r_i + r_j + h_range_extra_angstrom[pair]",
        "method": "two-centre S, T, <phi|beta> (radial Fourier + Gaunt); V_loc on the pp.x grid",
        "scf_converged": bool(scf.converged),
        "qe_energies_ev": {k: v * HARTREE_EV for k, v in scf.energies_ha.items()},
        "qe_functional": scf.functional,
        "pseudo_md5": {upfs[s].path.name: upfs[s].md5 for s in scf.species},
        "basis_upf_md5": {e: b.upf_md5 for e, b in bases.items() if e in basis_strings},
        "xml_md5": scf.md5,
        "units": "H: eV, S and D: dimensionless, lengths: Angstrom",
    }
    return ProjectionResult(frame=frame, checks=checks)
