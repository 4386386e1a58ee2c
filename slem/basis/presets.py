"""Named basis sizes: how many zetas per valence shell and how many polarisation zetas."""

from __future__ import annotations

from dataclasses import dataclass

from slem.basis.errors import BasisGenerationError


@dataclass(frozen=True)
class Preset:
    name: str
    n_zeta: int  # radial functions per occupied valence shell
    n_polarization: int  # radial functions of the polarisation shell (0, 1 or 2)


PRESETS = {
    p.name: p
    for p in (
        Preset("SZ", 1, 0),
        Preset("SZP", 1, 1),
        Preset("DZ", 2, 0),
        Preset("DZP", 2, 1),
        Preset("DZ2P", 2, 2),
        Preset("TZP", 3, 1),
        Preset("TZ2P", 3, 2),
    )
}
DEFAULT_PRESET = "DZP"


def get_preset(name: str) -> Preset:
    key = name.strip().upper()
    if key not in PRESETS:
        raise BasisGenerationError(f"unknown basis preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]


J_MODES = ("off", "auto", "all")
# 'auto' adds a shell's j = l - 1/2 function where the j-averaged zetas lose more than this fraction of the
# atom's spin-orbit splitting. DZP loses 7.0 % for Bi 6p (and Bi2Se3's Gamma gap is 215 instead of 331 meV,
# pw.x 350), 0.8 % for W 5d, 0.85 % for Se 4p, 0.09 % for Si 3p (docs/spin-orbit.md, "j-resolved basis").
J_AUTO_LOSS = 0.01


def loses_splitting(atom_ev: float, basis_ev: float) -> bool:
    """Whether a shell's j-averaged zetas lose more than ``J_AUTO_LOSS`` of the atom's splitting: where
    ``j_resolved='auto'`` adds the j = l - 1/2 function, and where ``slem basis`` suggests it."""
    return atom_ev != 0.0 and 1.0 - basis_ev / atom_ev > J_AUTO_LOSS

