"""The validation k-points of a cell: its standard path, then uniform random ones; a sheet gets in-plane ones.

Geometry only (no Bloch sum, no eigen-solve): the validation WorkChain uses it in the daemon to give the
pw.x bands run exactly the k-points at which ``slem validate`` evaluates the LCAO bands.
"""

from __future__ import annotations

import numpy as np

from slem.bands.path import kpath
from slem.data.dimensionality import periodic_axes


def validation_kpoints(
    cell: np.ndarray,
    npoints: int,
    n_random: int,
    seed: int,
    path: str | None = None,
    positions: np.ndarray | None = None,
    pbc=(True, True, True),
) -> dict:
    """Fractional k-points: ``npoints`` along the cell's standard path, then ``n_random`` uniform ones.

    With ``positions``, vacuum axes (``slem.data.dimensionality``: pbc False or a >= 10 Angstrom empty
    slab) get k = 0: the 2D path of the sheet and in-plane random k-points, the same for a frame (pbc
    all True) and its pw.x structure."""
    if npoints < 2 and n_random < 1:
        raise ValueError("ask for a k-path of at least 2 points or at least one random k-point")
    periodic = (
        tuple(bool(p) for p in np.asarray(pbc, dtype=bool).reshape(3))
        if positions is None
        else periodic_axes(cell, positions, pbc)
    )
    kpts = []
    path_info = {"n_path": 0, "x": [], "special_x": [], "labels": [], "periodic_axes": list(periodic)}
    if npoints >= 2:
        k = kpath(np.asarray(cell), path, npoints, periodic)
        kpts.append(k.kpts)
        path_info = {
            "n_path": len(k.kpts),
            "x": k.x.tolist(),
            "special_x": k.special_x.tolist(),
            "labels": list(k.labels),
            "periodic_axes": list(periodic),
        }
    if n_random > 0:
        # the same draws as before for 3D cells; vacuum axes are zeroed, not redrawn
        kpts.append(np.random.default_rng(seed).uniform(0.0, 1.0, size=(n_random, 3)) * np.array(periodic))
    return {"kpoints": np.concatenate(kpts).tolist(), **path_info}
