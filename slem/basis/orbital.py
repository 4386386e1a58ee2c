"""Numerical radial orbitals and the basis file (``slem-basis`` HDF5).

Each orbital is R(r) Y_lm(r_hat) with R tabulated on a uniform grid that starts at r = 0,
in Angstrom, normalised so that the integral of R(r)^2 r^2 dr is 1 (R in Angstrom^-3/2).
R is exactly zero for r >= cutoff: this is what makes the operators strictly local.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from slem.atomic import atomic_h5
from slem.data.orbitals import shells_to_string

BASIS_FORMAT = "slem-basis"
BASIS_VERSION = 1


class BasisFileError(ValueError):
    """A basis file is missing, damaged or not in the slem-basis format."""


@dataclass
class RadialOrbital:
    l: int
    zeta: int  # 0-based index among the orbitals of the same l
    r: np.ndarray  # uniform grid from 0, Angstrom
    values: np.ndarray  # R(r), Angstrom^-3/2
    cutoff: float  # Angstrom; values vanish for r >= cutoff
    kind: str = "valence"  # valence | semicore | split | polarization

    def norm(self) -> float:
        return float(np.trapezoid(self.values**2 * self.r**2, self.r))


@dataclass
class ElementBasis:
    element: str
    label: str  # preset name, e.g. DZP
    orbitals: list[RadialOrbital]  # storage order: all s, then p, d, f; zeta order within l
    upf_name: str = ""
    upf_md5: str = ""
    params: dict = field(default_factory=dict)  # generation parameters, energies, radii

    @property
    def shells(self) -> str:
        return shells_to_string([o.l for o in self.orbitals])

    @property
    def cutoff(self) -> float:
        return max(o.cutoff for o in self.orbitals)

    @property
    def n_orbitals(self) -> int:
        return sum(2 * o.l + 1 for o in self.orbitals)

    def check_order(self) -> None:
        ls = [o.l for o in self.orbitals]
        if ls != sorted(ls):
            raise BasisFileError(
                f"{self.element}: orbitals must be stored s, then p, then d, then f; got l={ls}"
            )


def write_basis(path: str | os.PathLike, bases: dict[str, ElementBasis]) -> Path:
    """Write the basis file atomically (temporary file, then rename)."""
    path = Path(path)
    with atomic_h5(path) as handle:
        handle.attrs["format"] = BASIS_FORMAT
        handle.attrs["version"] = BASIS_VERSION
        handle.attrs["units"] = "r: Angstrom, R(r): Angstrom^-3/2"
        for element, basis in sorted(bases.items()):
            basis.check_order()
            group = handle.create_group(element)
            group.attrs.update(
                {
                    "label": basis.label,
                    "shells": basis.shells,
                    "upf_name": basis.upf_name,
                    "upf_md5": basis.upf_md5,
                    "params": json.dumps(basis.params, sort_keys=True),
                }
            )
            for index, orbital in enumerate(basis.orbitals):
                sub = group.create_group(f"orbital_{index}")
                sub.create_dataset("r", data=orbital.r)
                sub.create_dataset("values", data=orbital.values)
                sub.attrs.update(
                    {"l": orbital.l, "zeta": orbital.zeta, "cutoff": orbital.cutoff, "kind": orbital.kind}
                )
    return path


def read_basis(path: str | os.PathLike) -> dict[str, ElementBasis]:
    path = Path(path)
    if not path.is_file():
        raise BasisFileError(f"basis file {path} does not exist; create it with 'slem basis'")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise BasisFileError(
            f"{path} is not a readable HDF5 file ({exc}); regenerate it with 'slem basis'"
        ) from exc
    with handle:
        if handle.attrs.get("format") != BASIS_FORMAT:
            raise BasisFileError(f"{path} is not a {BASIS_FORMAT} file")
        bases = {}
        for element, group in handle.items():
            orbitals = []
            n = len([k for k in group if k.startswith("orbital_")])
            for index in range(n):
                sub = group[f"orbital_{index}"]
                orbitals.append(
                    RadialOrbital(
                        l=int(sub.attrs["l"]),
                        zeta=int(sub.attrs["zeta"]),
                        r=sub["r"][()],
                        values=sub["values"][()],
                        cutoff=float(sub.attrs["cutoff"]),
                        kind=str(sub.attrs["kind"]),
                    )
                )
            bases[element] = ElementBasis(
                element=element,
                label=str(group.attrs["label"]),
                orbitals=orbitals,
                upf_name=str(group.attrs["upf_name"]),
                upf_md5=str(group.attrs["upf_md5"]),
                params=json.loads(group.attrs["params"]),
            )
        return bases
