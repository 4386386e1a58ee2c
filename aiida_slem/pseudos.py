"""The norm-conserving pseudopotentials aiida-slem installs from Debian's quantum-espresso-data, and the
pipeline's default family.

The LCAO projection needs norm-conserving UPFs (no augmentation charges), and one functional per
family because pw.x refuses to mix functionals. Debian ships few such files; these are the PBE ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEBIAN_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
FAMILY_LABEL = "SLEM/NC/PBE/Debian"
# extra on the one family group that 'aiida-slem setup --pseudo-family/--pseudo-dir' made the default: it
# lives in the profile's database with the family itself, so it follows the profile (and its archives)
DEFAULT_FAMILY_EXTRA = "aiida_slem_default_family"
STRINGENCIES = ("low", "normal", "high")


@dataclass(frozen=True)
class PseudoChoice:
    element: str
    filename: str
    cutoffs: dict  # stringency -> (ecutwfc, ecutrho), Ry
    why: str


PBE_NORM_CONSERVING = (
    PseudoChoice(
        "Si",
        "Si.pbe-rrkj.UPF",
        # low/normal/high are the fast/balanced/precise protocols' measured Si cutoffs (20, 30, 36 Ry)
        {"low": (20.0, 80.0), "normal": (30.0, 120.0), "high": (36.0, 144.0)},
        "PBE, norm-conserving RRKJ; the design note's measured reference (converged bands at 30-36 Ry)",
    ),
    PseudoChoice(
        "C",
        "C.pbe-mt_gipaw.UPF",
        # only 'normal' was chosen by hand; low/high scale it as Si's are scaled (2/3, 1.2), not measured
        {"low": (40.0, 160.0), "normal": (60.0, 240.0), "high": (72.0, 288.0)},
        "PBE, norm-conserving Troullier-Martins; the only PBE NC carbon in Debian "
        "(C.UPF/C_3.98148 are LDA/odd Z)",
    ),
)


def available_choices(pseudo_dir: Path = DEBIAN_PSEUDO_DIR) -> list[PseudoChoice]:
    return [choice for choice in PBE_NORM_CONSERVING if (pseudo_dir / choice.filename).is_file()]


def default_family_label() -> str:
    """The family 'aiida-slem setup' recorded as the pipeline's default in this profile, else Debian's."""
    from aiida import orm
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    labels = (
        orm.QueryBuilder()
        .append(PseudoPotentialFamily, filters={"extras": {"has_key": DEFAULT_FAMILY_EXTRA}}, project="label")
        .all(flat=True)
    )
    return sorted(labels)[0] if labels else FAMILY_LABEL


def set_default_family(family) -> None:
    """Make ``family`` the pipeline's default, and no other family."""
    from aiida import orm
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    others = orm.QueryBuilder().append(
        PseudoPotentialFamily, filters={"extras": {"has_key": DEFAULT_FAMILY_EXTRA}}
    )
    for (other,) in others.all():
        if other.pk != family.pk:
            other.base.extras.delete(DEFAULT_FAMILY_EXTRA)
    family.base.extras.set(DEFAULT_FAMILY_EXTRA, True)
