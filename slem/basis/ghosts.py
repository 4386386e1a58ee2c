"""The screened pseudo-atom's levels against the generator's own: a ghost-state check before any DFT.

ONCVPSP and ld1.x write each PP_CHI's eigenvalue (``pseudo_energy``) in the atomic configuration the
pseudopotential was made in, which is the configuration the pseudo-atom here is screened in. Solved
in the same configuration, the two agree to 0.01 eV for every PseudoDojo v0.4 file checked (noCC
table and NLCC regenerations, docs/basis.md). A Kleinman-Bylander form with a ghost state gives a
spurious bound level instead: PseudoDojo Si regenerated with ONCVPSP 4.0.1 and core correction puts
its 3s at -25.1 eV where its PP_CHI says -10.8, and pw.x runs with it without complaint and returns
nonsense bands. Such a file is refused before it reaches pw.x.
"""

from __future__ import annotations

from slem.basis.atom import PseudoAtom
from slem.basis.errors import BasisGenerationError
from slem.units import BOHR_ANGSTROM, HARTREE_EV
from slem.units import RYDBERG_EV as RY_EV

GHOST_TOLERANCE_EV = 0.1
# A fully relativistic file's shell is checked at its j-averaged operator against the (2j+1)-weighted mean
# of its two j levels; the two differ at second order in the splitting (W 5p: 0.37 eV for a 9.8 eV
# splitting), so such a level may differ by this fraction of its splitting more. A ghost is eV off.
SPIN_ORBIT_SPREAD_FRACTION = 0.1


class GhostStateError(BasisGenerationError):
    """The pseudopotential's levels disagree with its own generator's: a ghost state or a damaged file."""


def level_differences(atom: PseudoAtom) -> dict[str, tuple[float, float]]:
    """label -> (pseudo-atom level, the UPF's pseudo_energy), eV, for the occupied states that carry one."""
    energies = {c.label: c.pseudo_energy for c in atom.upf.chi if c.pseudo_energy is not None}
    return {
        s.label: (atom.free_energies[(s.l, s.index)] * HARTREE_EV, energies[s.label] * RY_EV)
        for s in atom.states
        if s.label in energies
    }


def check_reference_levels(atom: PseudoAtom, tolerance_ev: float = GHOST_TOLERANCE_EV) -> None:
    """Raise GhostStateError when a level is off by more than ``tolerance_ev`` (more, for the j-averaged
    shells of a fully relativistic file: ``SPIN_ORBIT_SPREAD_FRACTION``); call after ``atom.scf``."""
    spread = {c.label: c.spin_orbit_spread * RY_EV for c in atom.upf.chi}
    wrong = {
        k: v
        for k, v in level_differences(atom).items()
        if abs(v[0] - v[1]) > tolerance_ev + SPIN_ORBIT_SPREAD_FRACTION * spread.get(k, 0.0)
    }
    if wrong:
        detail = ", ".join(f"{k} {mine:.2f} eV vs {theirs:.2f} eV" for k, (mine, theirs) in wrong.items())
        raise GhostStateError(
            f"{atom.upf.path.name}: the pseudo-atom's levels disagree with the file's own PP_CHI energies "
            f"({detail}; they agree to {GHOST_TOLERANCE_EV} eV for sound files): the Kleinman-Bylander form "
            "has a ghost state or the file is damaged, and pw.x would return wrong bands with it; use "
            "another pseudopotential for this element (e.g. the official PseudoDojo table)"
        )


def check_upf_levels(path) -> dict[str, tuple[float, float]]:
    """Screen the pseudo-atom of the UPF at ``path`` and check its levels (``aiida-slem setup`` runs this
    on every file of a family before installing it); returns the compared levels."""
    from slem.basis.generate import FREE_RADIUS_ANGSTROM  # generate imports this module
    from slem.basis.xc import parse_functional
    from slem.qe.relativistic import j_average
    from slem.qe.upf import read_upf

    upf = j_average(read_upf(path, spin_orbit=True))  # a fully relativistic file: its j-averaged atom
    atom = PseudoAtom(upf, parse_functional(upf.functional))
    atom.scf(FREE_RADIUS_ANGSTROM / BOHR_ANGSTROM)
    check_reference_levels(atom)
    return level_differences(atom)
