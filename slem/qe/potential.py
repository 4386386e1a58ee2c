"""Reader for the total local Kohn-Sham potential written by ``pp.x`` (``plot_num=1``).

pp.x writes the "filplot" format: a header (grid, cell, species, atoms) and then the
values of V_loc + V_H + V_xc in Ry on the dense FFT grid, Fortran order (the first grid
index runs fastest). :func:`read_filplot` returns them as ``values[i1, i2, i3]``, the value
at fractional position (i1/nr1, i2/nr2, i3/nr3), which is the order numpy's FFT expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class PotentialFileError(ValueError):
    """The potential file is missing, truncated or not a pp.x filplot file."""


@dataclass
class LocalPotential:
    path: Path
    values_ry: np.ndarray  # (nr1, nr2, nr3)
    cell_bohr: np.ndarray  # (3, 3) rows, from the header
    positions_bohr: np.ndarray  # (N, 3) Cartesian, from the header
    plot_num: int


def read_filplot(path: str | Path) -> LocalPotential:
    path = Path(path)
    if not path.is_file():
        raise PotentialFileError(
            f"potential file {path} does not exist; "
            "write it with pp.x (&inputpp plot_num=1, filplot='vtot.dat')"
        )
    lines = path.read_text(errors="replace").splitlines()
    try:
        dims = [int(x) for x in lines[1].split()]
        nr1x, nr2x, nr3x, nr1, nr2, nr3, nat, ntyp = dims
        head = lines[2].split()
        ibrav, alat = int(head[0]), float(head[1])
        row = 3
        if ibrav != 0:
            raise PotentialFileError(
                f"{path}: ibrav={ibrav}; run pw.x with ibrav=0 (CELL_PARAMETERS) so the cell can be checked"
            )
        cell = np.array([[float(x) for x in lines[row + i].split()] for i in range(3)]) * alat
        row += 3
        plot_num = int(lines[row].split()[3])
        row += 1 + ntyp
        tau = np.array([[float(x) for x in lines[row + i].split()[1:4]] for i in range(nat)]) * alat
        row += nat
        flat = np.array(" ".join(lines[row:]).split(), dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise PotentialFileError(
            f"{path} is not a readable pp.x filplot file ({exc}); regenerate it"
        ) from exc
    expected = nr1x * nr2x * nr3
    if flat.size != expected:
        raise PotentialFileError(
            f"{path} holds {flat.size} values but the header announces {expected}; the file is truncated"
        )
    if plot_num != 1:
        raise PotentialFileError(
            f"{path} was written with plot_num={plot_num}; "
            "the projection needs plot_num=1 (total local potential)"
        )
    # Fortran order: index = i1 + nr1x*(i2 + nr2x*i3); nr1x/nr2x may pad beyond nr1/nr2.
    values = flat.reshape(nr3, nr2x, nr1x)[:, :nr2, :nr1].transpose(2, 1, 0).copy()
    del nr3x
    return LocalPotential(path=path, values_ry=values, cell_bohr=cell, positions_bohr=tau, plot_num=plot_num)
