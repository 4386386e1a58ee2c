"""Reader for norm-conserving UPF (v2) pseudopotentials.

Units are kept as stored in the file, i.e. Quantum ESPRESSO's: radii in bohr, energies
and potentials in Ry. ``betas`` and ``chi`` hold r*beta(r) and r*chi(r) exactly as the
UPF stores them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class UpfError(ValueError):
    """The UPF file is unsupported or lacks data the projection needs."""


@dataclass
class Projector:
    l: int
    values: np.ndarray  # r * beta(r), Ry bohr^-1/2 as in the UPF
    cutoff_index: int  # number of grid points where beta is non-zero
    j: float | None = None  # total angular momentum of a fully relativistic file's projector


@dataclass
class PseudoWavefunction:
    label: str
    l: int
    occupation: float
    values: np.ndarray  # r * chi(r)
    pseudo_energy: float | None = None  # Ry, the generator's eigenvalue; None where the file has none
    j: float | None = None  # total angular momentum in a fully relativistic file
    # a j-averaged shell (slem.qe.relativistic): its j = l +- 1/2 levels' spread, Ry (0: no partner)
    spin_orbit_spread: float = 0.0


@dataclass
class Upf:
    path: Path
    element: str
    z_valence: float
    functional: str
    pseudo_type: str
    core_correction: bool
    r: np.ndarray  # radial mesh, bohr
    rab: np.ndarray  # dr/di integration weights, bohr
    vloc: np.ndarray  # local potential, Ry
    betas: list[Projector]
    dij: np.ndarray  # (n_beta, n_beta), Ry
    chi: list[PseudoWavefunction]
    rho_atom: np.ndarray  # 4 pi r^2 rho(r)
    rho_core: np.ndarray | None = None
    md5: str = ""
    header: dict = field(default_factory=dict)

    @property
    def spin_orbit(self) -> bool:
        """Fully relativistic: its projectors come per (l, j) and act through spin-angle functions."""
        return any(b.j is not None for b in self.betas)

    @property
    def max_projector_radius(self) -> float:
        """Radius (bohr) beyond which every KB projector vanishes."""
        if not self.betas:
            return 0.0
        return float(max(self.r[min(b.cutoff_index, len(self.r)) - 1] for b in self.betas))


_ATTR_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def _attrs(text: str) -> dict[str, str]:
    return {k.lower(): v.strip() for k, v in _ATTR_RE.findall(text)}


def _block(text: str, tag: str, required: bool = True) -> tuple[dict[str, str], str] | None:
    match = re.search(rf"<{tag}(\s[^>]*)?>(.*?)</{tag}>", text, re.S)
    if match is None:
        selfclosing = re.search(rf"<{tag}(\s[^>]*)?/>", text, re.S)
        if selfclosing is not None:
            return _attrs(selfclosing.group(1) or ""), ""
        if required:
            raise UpfError(f"UPF file has no <{tag}> section")
        return None
    return _attrs(match.group(1) or ""), match.group(2)


def _numbers(body: str) -> np.ndarray:
    return np.array(body.replace(",", " ").split(), dtype=np.float64)


def _truthy(value: str) -> bool:
    return value.strip().strip(".").upper() in {"T", "TRUE"}


def _spin_orbit_j(text: str, tag: str, count: int, key: str) -> list[float]:
    values = []
    for index in range(1, count + 1):
        found = _block(text, rf"{tag}\.{index}", required=False)
        if found is None or key not in found[0]:
            raise UpfError(f"the UPF's PP_SPIN_ORB section has no {tag}.{index} {key}: the file is damaged")
        values.append(float(found[0][key]))
    return values


def read_upf(path: str | Path, spin_orbit: bool = False) -> Upf:
    """Read a norm-conserving UPF v2 file; reject ultrasoft and PAW with a clear message.

    A fully relativistic file (``has_so``) is refused unless ``spin_orbit``: the callers that pass it
    handle the j of its projectors (slem.qe.relativistic)."""
    path = Path(path)
    if not path.is_file():
        raise UpfError(f"pseudopotential file {path} does not exist")
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    if not re.search(r'<UPF\s+version="2', text):
        raise UpfError(f"{path.name} is not a UPF v2 file; convert it with QE's upfconv.x first")
    if "</UPF>" not in text[-4096:]:
        # a cut-off download still parses section by section: optional sections (PP_RHOATOM) just vanish
        raise UpfError(f"{path.name} ends before </UPF>: the file is truncated; copy or download it again")
    header, _ = _block(text, "PP_HEADER")
    pseudo_type = header.get("pseudo_type", "").upper()
    if _truthy(header.get("is_ultrasoft", "F")) or _truthy(header.get("is_paw", "F")) or pseudo_type in {
        "US",
        "USPP",
        "PAW",
    }:
        kind = "a PAW" if (_truthy(header.get("is_paw", "F")) or pseudo_type == "PAW") else "an ultrasoft"
        raise UpfError(
            f"{path.name} is {kind} pseudopotential; the LCAO projection needs a norm-conserving one "
            "(e.g. Si.pbe-rrkj.UPF, C.pbe-mt_gipaw.UPF from /usr/share/espresso/pseudo)"
        )
    has_so = _truthy(header.get("has_so", "F"))
    if has_so and not spin_orbit:
        raise UpfError(
            f"{path.name} is fully relativistic (spin-orbit); use a scalar-relativistic UPF here "
            "(slem basis and slem project take it for spin-orbit SCFs: pw.x noncolin and lspinorb)"
        )
    r = _numbers(_block(text, "PP_R")[1])
    rab = _numbers(_block(text, "PP_RAB")[1])
    vloc = _numbers(_block(text, "PP_LOCAL")[1])
    n_beta = int(header.get("number_of_proj", "0"))
    betas = []
    for index in range(1, n_beta + 1):
        attrs, body = _block(text, rf"PP_BETA\.{index}")
        values = _numbers(body)
        betas.append(
            Projector(
                l=int(attrs["angular_momentum"]),
                values=np.pad(values, (0, len(r) - len(values))),
                cutoff_index=int(attrs.get("cutoff_radius_index", len(values)) or len(values)),
            )
        )
    dij = np.zeros((n_beta, n_beta))
    if n_beta:
        dij = _numbers(_block(text, "PP_DIJ")[1]).reshape(n_beta, n_beta)
    chi = []
    n_wfc = int(header.get("number_of_wfc", "0"))
    for index in range(1, n_wfc + 1):
        found = _block(text, rf"PP_CHI\.{index}", required=False)
        if found is None:
            continue
        attrs, body = found
        energy = float(attrs.get("pseudo_energy", "0") or 0.0)
        chi.append(
            PseudoWavefunction(
                label=attrs.get("label", f"chi{index}"),
                l=int(attrs["l"]),
                occupation=float(attrs.get("occupation", "0")),
                values=_numbers(body),
                pseudo_energy=energy if energy != 0.0 else None,
            )
        )
    if has_so:
        so = _block(text, "PP_SPIN_ORB")[1]
        for beta, j in zip(betas, _spin_orbit_j(so, "PP_RELBETA", n_beta, "jjj"), strict=True):
            beta.j = j
        for wfc, j in zip(chi, _spin_orbit_j(so, "PP_RELWFC", len(chi), "jchi"), strict=True):
            wfc.j = j
    rho_found = _block(text, "PP_RHOATOM", required=False)
    rho_atom = _numbers(rho_found[1]) if rho_found else np.zeros_like(r)
    core = _truthy(header.get("core_correction", "F"))
    rho_core = _numbers(_block(text, "PP_NLCC")[1]) if core else None
    if len(rab) != len(r) or len(vloc) != len(r):
        raise UpfError(f"{path.name}: PP_R, PP_RAB and PP_LOCAL have different lengths; the file is damaged")
    return Upf(
        path=path,
        element=header.get("element", "").strip(),
        z_valence=float(header.get("z_valence", "0")),
        functional=" ".join(header.get("functional", "").split()),
        pseudo_type=pseudo_type,
        core_correction=core,
        r=r,
        rab=rab,
        vloc=vloc,
        betas=betas,
        dij=dij,
        chi=chi,
        rho_atom=rho_atom,
        rho_core=rho_core,
        md5=hashlib.md5(raw).hexdigest(),
        header=header,
    )
