"""What slem project checks on its inputs before projecting: the SCF's occupations against what D can
reproduce, the potential files against the SCF, the pseudopotentials against the basis and the SCF."""

from __future__ import annotations

import numpy as np

from slem.basis.orbital import ElementBasis
from slem.qe.potential import LocalPotential
from slem.qe.upf import Upf
from slem.qe.xml import QeScf
from slem.units import HARTREE_EV

from .density import Smearing
from .errors import ProjectionError
from .occupations import SMEARING_KINDS

POSITION_TOLERANCE_BOHR = 1e-4
METAL_FIX = "rerun pw.x with occupations='smearing' (e.g. smearing='mv', degauss=0.02)"


def _qe_levels(scf: QeScf) -> tuple[float, float] | None:
    """pw.x's highest occupied and lowest unoccupied level (Hartree) under fixed occupations, from the
    XML's own fields or, without them, from bands N/2 and N/2 + 1; None when pw.x computed no empty band."""
    if scf.homo_ha is not None and scf.lumo_ha is not None:
        return scf.homo_ha, scf.lumo_ha
    n_occ = int(round(scf.n_electrons if scf.noncolin else scf.n_electrons / 2))
    eigenvalues = np.asarray(scf.eigenvalues_ha)
    if eigenvalues.ndim == 2 and eigenvalues.shape[1] > n_occ >= 1:
        return float(eigenvalues[:, n_occ - 1].max()), float(eigenvalues[:, n_occ].min())
    return None


def check_occupations(scf: QeScf, allow_unconverged: bool) -> Smearing | None:
    """The occupation rule of D: None for fixed occupations, else pw.x's smearing (width in Ry)."""
    if scf.occupations == "smearing":
        if scf.smearing not in SMEARING_KINDS or not scf.degauss_ha or scf.degauss_ha <= 0:
            raise ProjectionError(
                f"smearing {scf.smearing!r} with degauss {scf.degauss_ha} (Ha) in the SCF XML is not one "
                "slem project reproduces: rerun pw.x with smearing gaussian, mp, mv or fd and degauss > 0"
            )
        smearing = Smearing(scf.smearing, 2.0 * scf.degauss_ha)
    elif scf.occupations == "fixed":
        smearing = None
        if not scf.noncolin and abs(scf.n_electrons / 2 - round(scf.n_electrons / 2)) > 1e-8:
            raise ProjectionError(
                f"{scf.n_electrons:g} electrons with fixed occupations cannot fill bands pairwise; "
                f"{METAL_FIX}"
            )
        levels = _qe_levels(scf)
        if levels is not None and levels[0] >= levels[1]:
            raise ProjectionError(
                "the SCF has fixed occupations but its highest occupied level "
                f"({levels[0] * HARTREE_EV:.4f} eV) is at or above its lowest unoccupied level "
                f"({levels[1] * HARTREE_EV:.4f} eV): the system is metallic (or its bands overlap); "
                f"{METAL_FIX}"
            )
    else:
        raise ProjectionError(
            f"occupations='{scf.occupations}' in the SCF; slem project builds D for occupations='fixed' "
            f"(insulators) or 'smearing' (metals, small gaps): {METAL_FIX}, or use 'fixed' for an insulator"
        )
    if not scf.converged and not allow_unconverged:
        raise ProjectionError(
            "the pw.x SCF did not converge; rerun it with a larger electron_maxstep or a smaller mixing_beta "
            "(or pass --allow-unconverged to project it anyway)"
        )
    return smearing


def check_potential(scf: QeScf, potential: LocalPotential) -> None:
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


def check_inputs(
    scf: QeScf, potentials: list[LocalPotential], bases: dict[str, ElementBasis], upfs: dict[str, Upf]
):
    if scf.noncolin and not scf.spin_orbit:
        raise ProjectionError("non-collinear SCFs without spin-orbit coupling are not supported")
    relativistic = sorted(upf.path.name for upf in upfs.values() if upf.spin_orbit)
    if relativistic and not scf.spin_orbit:
        raise ProjectionError(
            f"{', '.join(relativistic)} {'is' if len(relativistic) == 1 else 'are'} fully relativistic but "
            "the SCF ran without lspinorb, where pw.x merges the j = l +- 1/2 projectors in a way slem does "
            "not reproduce: rerun pw.x with noncolin=.true. and lspinorb=.true., or use scalar-relativistic "
            "pseudopotentials"
        )
    if len(potentials) != scf.n_spin:
        raise ProjectionError(
            f"the SCF has nspin={scf.n_spin} but {len(potentials)} potential file(s) were given: "
            + (
                "pass the up and the down potential (pp.x plot_num=1 with spin_component=1, then 2; "
                "slem project --potential-up and --potential-down)"
                if scf.lsda
                else "pass one potential (pp.x plot_num=1)"
            )
        )
    for potential in potentials:
        check_potential(scf, potential)
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
