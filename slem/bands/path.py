"""Band-structure paths through the Brillouin zone (via ase's special points)."""

from __future__ import annotations

from collections.abc import Sequence
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


def kpath(
    frame_or_cell: Frame | np.ndarray,
    path: str | None = None,
    npoints: int = 100,
    pbc: Sequence[bool] = (True, True, True),
) -> KPath:
    """A path such as ``"GXWLGK"`` (ase notation, ``G`` = Gamma); ``None`` takes ase's default.

    ``pbc``: the periodic axes (``slem.data.dimensionality.periodic_axes``); with one False, ase picks the
    path of the 2D lattice in the other two and keeps k = 0 along the vacuum axis."""
    cell = frame_or_cell.cell if isinstance(frame_or_cell, Frame) else np.asarray(frame_or_cell)
    if not any(pbc):
        raise ValueError(
            "no periodic axis (a molecule or cluster in a box) has no band path; validate such a frame at "
            "Gamma only (npoints < 2 and one random k-point)"
        )
    bandpath = Cell(cell).bandpath(path, npoints=npoints, pbc=list(pbc))
    x, special_x, labels = bandpath.get_linear_kpoint_axis()
    return KPath(
        kpts=bandpath.kpts, x=x, special_x=special_x, labels=[lab.replace("G", "Γ") for lab in labels]
    )
