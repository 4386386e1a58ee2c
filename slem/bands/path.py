"""Band-structure paths through the Brillouin zone (via ase's special points)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.cell import Cell

from slem.data.frame import Frame


@dataclass
class KPath:
    kpts: np.ndarray  # (nk, 3) fractional
    x: np.ndarray  # (nk,) cumulative path length, Angstrom^-1
    special_x: np.ndarray
    labels: list[str]


def kpath(frame_or_cell: Frame | np.ndarray, path: str | None = None, npoints: int = 100) -> KPath:
    """A path such as ``"GXWLGK"`` (ase notation, ``G`` = Gamma); ``None`` takes ase's default."""
    cell = frame_or_cell.cell if isinstance(frame_or_cell, Frame) else np.asarray(frame_or_cell)
    bandpath = Cell(cell).bandpath(path, npoints=npoints)
    x, special_x, labels = bandpath.get_linear_kpoint_axis()
    return KPath(
        kpts=bandpath.kpts, x=x, special_x=special_x, labels=[lab.replace("G", "Γ") for lab in labels]
    )
