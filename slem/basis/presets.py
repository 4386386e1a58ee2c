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
