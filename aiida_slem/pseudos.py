"""The norm-conserving pseudopotentials aiida-slem installs from Debian's quantum-espresso-data.

The LCAO projection needs norm-conserving UPFs (no augmentation charges), and one functional per
family because pw.x refuses to mix functionals. Debian ships few such files; these are the PBE ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
FAMILY_LABEL = "SLEM/NC/PBE/Debian"


@dataclass(frozen=True)
class PseudoChoice:
    element: str
    filename: str
    cutoff_wfc: float  # Ry, 'normal' stringency
    cutoff_rho: float  # Ry
    why: str


PBE_NORM_CONSERVING = (
    PseudoChoice(
        "Si",
        "Si.pbe-rrkj.UPF",
        30.0,
        120.0,
        "PBE, norm-conserving RRKJ; the design note's measured reference (converged bands at 30-36 Ry)",
    ),
    PseudoChoice(
        "C",
        "C.pbe-mt_gipaw.UPF",
        60.0,
        240.0,
        "PBE, norm-conserving Troullier-Martins; the only PBE NC carbon in Debian "
        "(C.UPF/C_3.98148 are LDA/odd Z)",
    ),
)


def available_choices(pseudo_dir: Path = DEBIAN_PSEUDO_DIR) -> list[PseudoChoice]:
    return [choice for choice in PBE_NORM_CONSERVING if (pseudo_dir / choice.filename).is_file()]
