"""Generate a strictly confined pseudo-atomic-orbital basis (SIESTA style) from a norm-conserving UPF.

Inputs and outputs are in eV and Angstrom; the pseudo-atom itself is solved in Hartree
atomic units (atom.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slem.basis.atom import Channel, PseudoAtom, ValenceState
from slem.basis.confinement import BOHR_ANGSTROM, HARTREE_EV, SoftConfinement, radius_for_shift
from slem.basis.errors import BasisGenerationError, RadiusTooSmallError
from slem.basis.ghosts import check_reference_levels
from slem.basis.orbital import ElementBasis, RadialOrbital
from slem.basis.presets import DEFAULT_PRESET, J_MODES, get_preset, loses_splitting
from slem.basis.shells import describe, plan_shells
from slem.basis.split import make_split
from slem.basis.splitting import spin_orbit_splitting
from slem.basis.xc import parse_functional
from slem.data.orbitals import L_LETTERS
from slem.qe.relativistic import j_average, j_channel_dij
from slem.qe.upf import read_upf
from slem.threads import single_blas_thread

DEFAULT_ENERGY_SHIFT_EV = 0.05  # gives Si r_c(p) = 4.28 Angstrom, the size measured to reach ~50 meV bands
# SIESTA's 0.15 gave 65 meV mean valence error for bulk Si DZP; 0.07 (a wider second zeta) gave 49.
DEFAULT_SPLIT_NORM = 0.07
# A compact third zeta (split norm 0.3) gave the smallest maximum error for Si TZ2P (48 vs 65 meV).
DEFAULT_SPLIT_NORM_3 = 0.3
FREE_RADIUS_ANGSTROM = 12.0

Radii = Mapping[int, float] | float | None


@dataclass
class _Shell:
    l: int
    kind: str
    r_c: float  # bohr, hard wall of the parent orbital
    cutoff: float  # bohr, beyond which the function is zero
    values: Callable[[np.ndarray], np.ndarray]  # r (bohr) -> R(r) (bohr^-3/2), unnormalised
    label: str
    eigenvalue: float | None = None  # Ha


def _radius_map(radii: Radii, needed: set[int]) -> dict[int, float]:
    if radii is None:
        return {}
    if isinstance(radii, int | float):
        values = {l: float(radii) for l in needed}
    else:
        values = {int(l): float(v) for l, v in radii.items()}
    for l, value in values.items():
        if not value > 0.0:
            raise BasisGenerationError(f"radius for l={l} is {value} Angstrom; radii must be positive")
        if value > FREE_RADIUS_ANGSTROM:
            raise BasisGenerationError(
                f"radius for l={l} is {value} Angstrom; at most {FREE_RADIUS_ANGSTROM} Angstrom is supported"
            )
    return {l: v / BOHR_ANGSTROM for l, v in values.items()}


def _radial(channel: Channel, state: int):
    return lambda r: channel.radial(r, state)


def _check_bound(atom: PseudoAtom, state: ValenceState, channel: Channel, r_c: float, conf, limit: float):
    energy = float(channel.energies[state.index])
    if energy <= limit:
        return
    free = atom.free_energies[(state.l, state.index)]
    hint = ""
    if free < limit:

        def eig(radius: float) -> float:
            return float(atom.solve(state.l, radius, state.index + 1, conf).energies[state.index])

        needed = radius_for_shift(eig, free, limit - free, atom.free_radius, state.l)
        hint = f" at least {needed * BOHR_ANGSTROM:.2f} Angstrom binds it;"
    raise RadiusTooSmallError(
        f"{atom.upf.element} {state.label} (l={state.l}): the confined eigenvalue is "
        f"{energy * HARTREE_EV:+.2f} eV at r_c={r_c * BOHR_ANGSTROM:.2f} Angstrom, above the "
        f"{limit * HARTREE_EV:+.2f} eV limit, so the orbital is not bound;{hint} use a larger radius "
        "or leave the radius unset to choose it by energy shift"
    )


@single_blas_thread()
def generate_basis(
    upf_path: str | Path,
    preset: str = DEFAULT_PRESET,
    radii: Radii = None,
    energy_shift_ev: float = DEFAULT_ENERGY_SHIFT_EV,
    split_norm: float = DEFAULT_SPLIT_NORM,
    split_norm_3: float = DEFAULT_SPLIT_NORM_3,
    grid_spacing: float = 0.01,
    ecut_ry: float = 200.0,
    confinement: SoftConfinement | None = None,
    max_eigenvalue_ev: float = 0.0,
    j_resolved: str = "off",
) -> ElementBasis:
    """Build the basis of one element from its UPF.

    radii: None (choose every r_c by ``energy_shift_ev``), one radius in Angstrom for all l, or
    ``{l: radius}`` (l missing from the mapping fall back to the energy shift). The polarisation
    shell takes the radius of the shell it polarises unless its own l is given.

    ``j_resolved`` (fully relativistic files only): 'all' adds to every valence shell with l > 0 the
    confined eigenfunction of its j = l - 1/2 channel, 'auto' only where the j-averaged zetas lose more than
    ``J_AUTO_LOSS`` of the atom's spin-orbit splitting, 'off' none.
    """
    choice = get_preset(preset)
    if energy_shift_ev <= 0.0:
        raise BasisGenerationError(f"energy shift must be positive, got {energy_shift_ev} eV (SIESTA: 0.27)")
    split_3 = split_norm_3
    conf = confinement if confinement is not None else SoftConfinement()
    # a fully relativistic file gives the basis of its j-averaged (scalar) operator; spin-orbit SCFs use
    # it as the spatial half of a spinor basis
    relativistic = read_upf(upf_path, spin_orbit=True)
    if j_resolved not in J_MODES:
        raise BasisGenerationError(f"j_resolved must be one of {J_MODES}, got {j_resolved!r}")
    if j_resolved != "off" and not relativistic.spin_orbit:
        raise BasisGenerationError(
            f"{Path(upf_path).name} is scalar-relativistic: a j-resolved basis needs a fully relativistic "
            "UPF (its projectors carry j); drop j_resolved or use the file's FR version"
        )
    upf = j_average(relativistic)
    atom = PseudoAtom(upf, parse_functional(upf.functional), ecut_ry=ecut_ry)
    free_radius = FREE_RADIUS_ANGSTROM / BOHR_ANGSTROM
    atom.scf(free_radius)
    check_reference_levels(atom)
    plan = plan_shells(
        upf.element, atom.states, {key: e * HARTREE_EV for key, e in atom.free_energies.items()}
    )
    occupied_ls = {s.l for s in atom.states}
    pol_l = plan.polarization_l
    shell_ls = occupied_ls | ({pol_l} if choice.n_polarization else set())
    fixed = _radius_map(radii, shell_ls)
    extra = sorted(set(fixed) - shell_ls)
    if extra:
        raise BasisGenerationError(
            f"radii given for l={extra}, but the {choice.name} basis of {upf.element} has shells "
            f"l={sorted(shell_ls)} only; remove those radii"
        )

    # One radius per occupied l, set by the outermost state of that l (a semicore shell under a
    # valence shell of the same l shares its channel, e.g. Mo 4s under 5s).
    radius: dict[int, float] = {}
    for l in sorted(occupied_ls):
        if l in fixed:
            radius[l] = fixed[l]
            continue
        outer = max((s for s in atom.states if s.l == l), key=lambda s: s.index)

        def eig(r_c: float, outer=outer) -> float:
            return float(atom.solve(outer.l, r_c, outer.index + 1, conf).energies[outer.index])

        ref = atom.free_energies[(l, outer.index)]
        radius[l] = radius_for_shift(eig, ref, energy_shift_ev / HARTREE_EV, free_radius, l)

    shells: list[_Shell] = []
    splittings: dict[str, dict[str, float]] = {}
    limit = max_eigenvalue_ev / HARTREE_EV
    for l in sorted(occupied_ls):
        states = sorted((s for s in atom.states if s.l == l), key=lambda s: s.index)
        channel = atom.solve(l, radius[l], states[-1].index + 1, conf)
        for state in states:
            _check_bound(atom, state, channel, radius[l], conf, limit)
            semicore = plan.is_semicore(state)
            shells += _zetas(
                l,
                channel,
                state.index,
                radius[l],
                1 if semicore else choice.n_zeta,
                "semicore" if semicore else "valence",
                state.label,
                [split_norm, split_3],
            )
            if relativistic.spin_orbit and l > 0 and not semicore:
                # each valence shell's splitting in the atom and within its l's functions (the polarisation
                # shell never shares a valence l); 'auto' reads it before adding the j = l - 1/2 function
                kept = (
                    None if j_resolved == "all" else _kept_splitting(atom, relativistic, state, shells, conf)
                )
                if kept is None or (j_resolved == "auto" and loses_splitting(**kept)):
                    shells.append(_j_minority(atom, relativistic, state, radius[l], conf))
                    kept = _kept_splitting(atom, relativistic, state, shells, conf)
                splittings[state.label] = kept
    polarization = None
    if choice.n_polarization:
        r_pol = fixed.get(pol_l, radius[plan.polarization_parent])
        index = plan.polarization_index
        channel = atom.solve(pol_l, r_pol, index + 1, conf)
        shells += _zetas(
            pol_l,
            channel,
            index,
            r_pol,
            choice.n_polarization,
            "polarization",
            f"{L_LETTERS[pol_l]}-pol",
            [split_norm],
        )
        polarization = {"l": pol_l, "r_c": r_pol * BOHR_ANGSTROM, "state_index": index}
        radius.setdefault(pol_l, r_pol)
    shells.sort(key=lambda s: s.l)  # stable: keeps shell and zeta order within each l
    return _assemble(
        upf,
        choice.name,
        shells,
        radius,
        grid_spacing,
        {
            "energy_shift_ev": energy_shift_ev if occupied_ls - set(fixed) else None,
            "split_norm": split_norm,
            "split_norm_3": split_3 if choice.n_zeta > 2 else None,
            "j_resolved": j_resolved,
            "spin_orbit_splittings": splittings,  # a fully relativistic file's, per valence shell
            "functional": atom.functional.name,
            "upf_functional": upf.functional,
            "z_valence": upf.z_valence,
            "ecut_ry": ecut_ry,
            "confinement": conf.as_dict(),
            "configuration": {s.label: s.occupation for s in atom.states},
            "shells": describe(plan),
            "polarization": polarization,
            "free_eigenvalues": {
                s.label: atom.free_energies[(s.l, s.index)] * HARTREE_EV for s in atom.states
            },
        },
    )


def _kept_splitting(atom: PseudoAtom, relativistic, state: ValenceState, shells: list[_Shell], conf) -> dict:
    own = [(s.values, s.cutoff) for s in shells if s.l == state.l]
    atom_ev, basis_ev = spin_orbit_splitting(atom, relativistic, state.l, state.index, own, conf)
    return {"atom_ev": float(atom_ev), "basis_ev": float(basis_ev)}


def _j_minority(atom: PseudoAtom, relativistic, state: ValenceState, r_c: float, conf) -> _Shell:
    """The confined eigenfunction of ``state``'s j = l - 1/2 channel, on the j-averaged atom's screening."""
    l = state.l
    channel = atom.solve(l, r_c, state.index + 1, conf, j_channel_dij(relativistic, l, l - 0.5))
    energy = float(channel.energies[state.index])
    return _Shell(
        l, "spin-orbit", r_c, r_c, _radial(channel, state.index), f"{state.label} j={2 * l - 1}/2", energy
    )


def _zetas(l, channel, state, r_c, n, kind, label, norms) -> list[_Shell]:
    phi1 = _radial(channel, state)
    energy = float(channel.energies[state])
    out = [_Shell(l, kind, r_c, r_c, phi1, label, energy)]
    for zeta in range(1, n):
        split = make_split(l, phi1, lambda r: channel.radial_derivative(r, state), r_c, norms[zeta - 1])
        values = lambda r, split=split: split.apply(r, phi1(r))
        out.append(_Shell(l, "split", r_c, split.r_s, values, label))
    return out


def _assemble(upf, label, shells, radius, spacing, params) -> ElementBasis:
    r_max = max(s.cutoff for s in shells) * BOHR_ANGSTROM
    r = np.arange(int(np.floor(r_max / spacing)) + 2) * spacing
    bohr_r = r / BOHR_ANGSTROM
    orbitals = []
    records = []
    zeta_count: dict[int, int] = {}
    for shell in shells:
        cutoff = shell.cutoff * BOHR_ANGSTROM
        values = np.where(r < cutoff, shell.values(bohr_r), 0.0) * BOHR_ANGSTROM**-1.5
        zeta = zeta_count.get(shell.l, 0)
        zeta_count[shell.l] = zeta + 1
        orbital = RadialOrbital(shell.l, zeta, r, values, cutoff, shell.kind)
        orbital.values = values / np.sqrt(orbital.norm())
        orbitals.append(orbital)
        records.append(
            {
                "l": shell.l,
                "zeta": zeta,
                "kind": shell.kind,
                "state": shell.label,
                "cutoff": cutoff,
                "r_c": shell.r_c * BOHR_ANGSTROM,
                "eigenvalue_ev": None if shell.eigenvalue is None else shell.eigenvalue * HARTREE_EV,
            }
        )
    eigen: dict[str, list[float]] = {}
    for rec in records:
        if rec["eigenvalue_ev"] is not None:
            eigen.setdefault(L_LETTERS[rec["l"]], []).append(rec["eigenvalue_ev"])
    params = {
        "preset": label,
        "radii": {L_LETTERS[l]: v * BOHR_ANGSTROM for l, v in sorted(radius.items())},
        "eigenvalues": eigen,
        "orbitals": records,
        "grid_spacing": spacing,
        **params,
    }
    return ElementBasis(upf.element, label, orbitals, upf_name=upf.path.name, upf_md5=upf.md5, params=params)
