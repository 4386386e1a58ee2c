"""The two parts of a fully relativistic UPF's nonlocal operator: j-average and spin-orbit.

pw.x (lspinorb) applies each projector of angular momentum l and total angular momentum j through
the spin-angle functions of that j: V_NL = sum_{l,j} V_lj (x) P_lj, with V_lj the KB operator of the
projectors of (l, j) and P_lj the projector onto total angular momentum j within l (x) spin 1/2. With
L.sigma = 2 L.S, P_{l,l+1/2} = (l + 1 + L.sigma) / (2l + 1) and P_{l,l-1/2} = (l - L.sigma) / (2l + 1), so

    V_NL = sum_l [(l+1) V_l+ + l V_l-] / (2l+1) (x) 1  +  sum_l (V_l+ - V_l-) / (2l+1) (x) L.sigma,

exactly: a j-averaged scalar operator (what a scalar-relativistic basis sees) and a spin-orbit
operator. Both keep every projector of the file; only the weights of D_ij change.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .upf import PseudoWavefunction, Upf, UpfError


def _sign(l: int, j: float) -> int:
    if abs(j - (l + 0.5)) < 1e-6:
        return +1
    if l > 0 and abs(j - (l - 0.5)) < 1e-6:
        return -1
    raise UpfError(f"a projector with l={l} has j={j:g}; j must be l + 1/2 or l - 1/2")


def scalar_weights(upf: Upf) -> np.ndarray:
    """Per projector: (l+1)/(2l+1) for j = l + 1/2, l/(2l+1) for j = l - 1/2 (1 for l = 0)."""
    return np.array(
        [(b.l + 1 if _sign(b.l, b.j) > 0 else b.l) / (2 * b.l + 1) for b in upf.betas], dtype=np.float64
    )


def spin_orbit_weights(upf: Upf) -> np.ndarray:
    """Per projector: the weight of D_ij in front of L.sigma, +-1/(2l+1) for j = l +- 1/2 (0 for l = 0)."""
    return np.array(
        [0.0 if b.l == 0 else _sign(b.l, b.j) / (2 * b.l + 1) for b in upf.betas], dtype=np.float64
    )


def _merged_wavefunctions(chi: list[PseudoWavefunction]) -> list[PseudoWavefunction]:
    """One pseudo-wavefunction per shell: j = l +- 1/2 partners (same label and l) become their
    occupation-weighted mean, with the summed occupation and the (2j+1)-weighted mean energy."""
    groups: dict[tuple[str, int], list[PseudoWavefunction]] = {}
    for wfc in chi:
        groups.setdefault((wfc.label, wfc.l), []).append(wfc)
    merged = []
    for (label, l), parts in groups.items():
        degeneracy = np.array([2 * p.j + 1 if p.j is not None else 2 * (2 * l + 1) for p in parts])
        occupation = sum(p.occupation for p in parts)
        energies = [p.pseudo_energy for p in parts]
        energy = None if None in energies else float(degeneracy @ energies / degeneracy.sum())
        spread = 0.0 if energy is None else float(max(energies) - min(energies))
        values = sum(w * p.values for w, p in zip(degeneracy, parts, strict=True)) / degeneracy.sum()
        merged.append(PseudoWavefunction(label, l, occupation, values, energy, spin_orbit_spread=spread))
    return merged


def j_average(upf: Upf) -> Upf:
    """The scalar-relativistic view of a fully relativistic UPF: its j-averaged nonlocal operator (every
    projector kept, D_ij times its scalar weight) and one pseudo-wavefunction per shell. The md5 stays
    the file's: a basis built from this view belongs to that file. A scalar file comes back as it is."""
    if not upf.spin_orbit:
        return upf
    weights = scalar_weights(upf)
    betas = [dataclasses.replace(b, j=None) for b in upf.betas]
    return dataclasses.replace(
        upf, betas=betas, dij=upf.dij * weights[:, None], chi=_merged_wavefunctions(upf.chi)
    )


def j_channel_dij(upf: Upf, l: int, j: float) -> np.ndarray:
    """D_ij of the nonlocal operator that a state of angular momentum l and total angular momentum j feels:
    the projectors of (l, j) at full weight, those of l's other j dropped (other l keep their scalar
    weight; a channel-l solve never sees them). The radial equation of that j is then exactly the pseudo-
    atom's with this D_ij in place of the j-averaged one."""
    if not upf.spin_orbit:
        raise UpfError(f"{upf.path.name} is scalar-relativistic: its projectors carry no j")
    sign = _sign(l, j)
    weights = np.array(
        [(1.0 if _sign(b.l, b.j) == sign else 0.0) if b.l == l else w
         for b, w in zip(upf.betas, scalar_weights(upf), strict=True)],
        dtype=np.float64,
    )  # fmt: skip
    # D_ij couples projectors of one (l, j) only, so row weights suffice, as in j_average
    return np.asarray(upf.dij) * weights[:, None]

