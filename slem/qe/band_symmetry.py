"""pw.x's own symmetry labels of its bands: QE's bands.x with ``lsym = .true.``
(input: ``slem.qe.inputs.bands_symmetry_input``).

bands.x classifies each level at each k-point by the irreducible representation of the little group (double
groups for noncollinear runs) and names it, e.g. ``G_5+`` or ``G_8-``; the trailing sign is the character of
inversion, i.e. the parity. These are the reference for ``slem.bands.parity`` at Gamma, where the parity
does not depend on the choice of inversion centre. At zone-border points of non-symmorphic groups bands.x
gives no decomposition, and such k-points are returned without levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_KPOINT = re.compile(r"xk=\(\s*([-\d.]+),\s*([-\d.]+),\s*([-\d.]+)\s*\)")
_LEVEL = re.compile(r"e\(\s*(\d+)\s*-\s*(\d+)\)\s*=\s*([-\d.]+)\s*eV\s+(\d+)\s+-->\s*(.*)")


@dataclass
class SymmetryLevel:
    first: int  # 1-based band indices, as bands.x prints them
    last: int
    energy_ev: float
    labels: str

    @property
    def parity(self) -> int | None:
        """+1 or -1 from the label's trailing sign (g/u names carry one too), None without inversion."""
        words = self.labels.split()
        return {"+": 1, "-": -1}.get(words[-1][-1]) if words else None


@dataclass
class SymmetryPoint:
    kpoint: tuple[float, float, float]  # Cartesian, units 2 pi / alat, as bands.x prints it
    levels: list[SymmetryLevel] = field(default_factory=list)

    def band_parities(self) -> list[int | None]:
        """One parity per band from band 1 (list index 0) up to the last classified level; None for a band
        no level names."""
        out: list[int | None] = [None] * max((level.last for level in self.levels), default=0)
        for level in self.levels:
            out[level.first - 1 : level.last] = [level.parity] * (level.last - level.first + 1)
        return out


def read_band_symmetry(output: str | Path) -> list[SymmetryPoint]:
    """The k-points of a bands.x (lsym) output in order, each with its classified levels."""
    points: list[SymmetryPoint] = []
    for line in Path(output).read_text().splitlines():
        k = _KPOINT.search(line)
        if k:
            points.append(SymmetryPoint(tuple(float(x) for x in k.groups())))
            continue
        level = _LEVEL.search(line)
        if level and points:
            first, last, energy, _, labels = level.groups()
            levels = points[-1].levels
            if levels and (levels[-1].first, levels[-1].last) == (int(first), int(last)):
                # a Kramers pair of two complex-conjugate one-dimensional irreps (D3d's G_5, G_6) is printed
                # once per irrep, on two lines with the same bands: one level, both names
                levels[-1].labels += " / " + labels.strip()
                continue
            levels.append(SymmetryLevel(int(first), int(last), float(energy), labels.strip()))
    return points
