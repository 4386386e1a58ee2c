"""Which shells of a pseudo-atom are semicore, which are valence, and which shell polarises them.

The defaults follow SIESTA's spirit for pseudopotentials with semicore states (PseudoDojo's Ga-d,
Mo-sp, Hf-sp, W-fsp, ...): semicore shells are single-zeta, valence shells take the preset's zetas,
and one polarisation shell of l + 1 is added to the outermost valence shell.

Semicore rule (eigenvalues of the free, screened pseudo-atom): an occupied state is semicore when
an occupied state of the same l lies above it (Mo 4s under 5s), or when its principal quantum
number (from the PP_CHI label, e.g. "3D") is below the outermost one and it lies more than
``SEMICORE_DEPTH_EV`` below the highest occupied level. Measured on PseudoDojo v0.4 (PBE): Ga 3d
16.6 eV, In 4d 16.1, Pb 5d 17.7, Ba 5p 15.5, Mo 4p 34 eV below (semicore); Cu 3d 0.4, Zn 3d 4.1,
Cd 4d 6.0, Lu 4f 7.9 eV below (valence, as in SIESTA's and ABACUS's standard bases). The principal
quantum number keeps first-row 2s shells valence (O 2s lies 14.9 eV below 2p). Without a readable
label the depth alone decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from slem.basis.atom import ValenceState
from slem.basis.errors import BasisGenerationError
from slem.data.orbitals import L_LETTERS

SEMICORE_DEPTH_EV = 10.0
MAX_ORBITAL_L = 3  # f: the data format, the Wigner matrices and the model's readout stop here


@dataclass(frozen=True)
class ShellPlan:
    semicore: tuple[ValenceState, ...]
    valence: tuple[ValenceState, ...]
    polarization_l: int
    polarization_parent: int  # l of the valence shell whose radius the polarisation shell takes
    polarization_index: int  # eigenstate of the polarisation channel: above every occupied state of that l

    def is_semicore(self, state: ValenceState) -> bool:
        return state in self.semicore


def polarization_l(valence_ls: set[int]) -> tuple[int, int]:
    """(l of the polarisation shell, l of the shell whose radius it shares)."""
    top = max(valence_ls)
    if top + 1 <= 2 or 1 in valence_ls:
        return top + 1, top
    # Transition metals (s and d occupied, no p): polarise the s shell with p, as SIESTA does.
    return 1, 0


def principal_number(state: ValenceState) -> int | None:
    match = re.fullmatch(r"\s*(\d)\s*[spdfSPDF]\s*", state.label)
    return int(match.group(1)) if match else None


def plan_shells(
    element: str, states: list[ValenceState], free_energies_ev: dict[tuple[int, int], float]
) -> ShellPlan:
    """Split the occupied states into semicore and valence and choose the polarisation shell."""
    top = max(free_energies_ev[(s.l, s.index)] for s in states)
    numbers = [principal_number(s) for s in states]
    outermost = max(numbers) if None not in numbers else None
    semicore, valence = [], []
    for state, n in zip(states, numbers, strict=True):
        covered = any(o.l == state.l and o.index > state.index for o in states)
        inner = outermost is None or n < outermost
        deep = free_energies_ev[(state.l, state.index)] < top - SEMICORE_DEPTH_EV
        (semicore if covered or (inner and deep) else valence).append(state)
    pol_l, parent = polarization_l({s.l for s in valence})
    if pol_l > MAX_ORBITAL_L:
        raise BasisGenerationError(
            f"{element}: the valence shells {', '.join(s.label for s in valence)} would be polarised by a "
            f"{pol_l}-shell (g), but orbitals stop at f (l = {MAX_ORBITAL_L}) in the basis, the data formats "
            "and the model; use a preset without polarisation (SZ, DZ) for this element, or a "
            "pseudopotential that keeps the f shell in the core"
        )
    index = 1 + max((s.index for s in states if s.l == pol_l), default=-1)
    return ShellPlan(tuple(semicore), tuple(valence), pol_l, parent, index)


def describe(plan: ShellPlan) -> dict:
    """The plan as recorded in the basis file's parameters."""
    return {
        "semicore": [s.label for s in plan.semicore],
        "valence": [s.label for s in plan.valence],
        "polarization": f"{L_LETTERS[plan.polarization_l]} (state {plan.polarization_index} of the channel) "
        f"on {L_LETTERS[plan.polarization_parent]}",
        "semicore_rule": f"same-l state above, or deeper than {SEMICORE_DEPTH_EV:g} eV below the highest "
        "occupied level (free pseudo-atom)",
    }


def semicore_electrons(params: dict) -> float:
    """Electrons in the semicore shells a basis file's parameters record (0 for a basis without them)."""
    labels = params.get("shells", {}).get("semicore", [])
    return float(sum(params["configuration"][label] for label in labels))
