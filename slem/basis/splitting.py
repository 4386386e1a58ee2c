"""How much of a pseudo-atom's spin-orbit splitting a basis keeps (fully relativistic files).

The j = l +- 1/2 levels of a shell solve the radial equation with that j's projectors
(``relativistic.j_channel_dij``) on the basis's own frozen screening and confinement. A basis of
spatial radial functions (each times both spins) reproduces both levels only where its functions of
that l span both j solutions; its levels are the Rayleigh-Ritz values within that span. The j-averaged
zetas alone keep W 5d's 745 meV splitting to 0.8 %, but miss Bi 6p's 1.97 eV by 7 %, which is what
``generate_basis(j_resolved='auto')`` repairs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import eigh

from slem.basis.atom import PseudoAtom
from slem.basis.confinement import HARTREE_EV, SoftConfinement
from slem.qe.relativistic import j_channel_dij
from slem.qe.upf import Upf

RadialFunction = tuple[Callable[[np.ndarray], np.ndarray], float]  # R(r) in bohr^-3/2, cutoff (bohr)


def spin_orbit_splitting(
    atom: PseudoAtom,
    relativistic: Upf,
    l: int,
    index: int,
    functions: list[RadialFunction],
    confinement: SoftConfinement,
) -> tuple[float, float]:
    """(atom's, basis's) E(j = l + 1/2) - E(j = l - 1/2) in eV for state ``index`` of channel l.

    ``functions`` are the basis's radial functions of that l; the atom is confined like the outermost."""
    r_c = max(cutoff for _, cutoff in functions)
    levels = []
    for j in (l + 0.5, l - 0.5):
        bessel, r, w, h = atom.channel_hamiltonian(l, r_c, confinement, j_channel_dij(relativistic, l, j))
        h = 0.5 * (h + h.T)
        values = np.column_stack([np.where(r < cutoff, f(r), 0.0) for f, cutoff in functions])
        c = bessel.values(r).T @ ((w * r**2)[:, None] * values)
        within = eigh(c.T @ h @ c, c.T @ c, eigvals_only=True)[index]
        levels.append((np.linalg.eigvalsh(h)[index], within))
    (exact_plus, basis_plus), (exact_minus, basis_minus) = levels
    return HARTREE_EV * (exact_plus - exact_minus), HARTREE_EV * (basis_plus - basis_minus)
