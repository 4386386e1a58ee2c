"""The settings of a validation (k-points, windows, thresholds), checked once for the CLI and the CalcJob."""

from __future__ import annotations

from dataclasses import dataclass, field

# the transfer splits a test frame can belong to (workflows/splits.py decides which frame is in which)
SPLITS = ("in_distribution", "held_out_structure", "held_out_composition", "larger_cells")


def unknown_splits(splits: dict[str, str]) -> list[str]:
    """The split names in ``{frame label: split}`` that are not one of ``SPLITS``."""
    return sorted(set(splits.values()) - set(SPLITS))


@dataclass
class Settings:
    kpath_npoints: int = 40
    n_random_k: int = 10
    seed: int = 0
    conduction_window_eV: float = 2.0
    # S(k) eigenvalues at or below this are dropped (canonical orthogonalisation) on both the predicted and
    # the reference side; 0 solves the full generalised problem. See slem.bands.generalized_eigvalsh.
    overlap_tolerance: float = 0.0
    thresholds: dict = field(default_factory=dict)
    # metals (frame metadata occupations == 'smearing'): errors of the states within +-fermi_window_eV of
    # E_F, and the E_F error from a Gamma-centred mesh of this k-spacing (1/Angstrom, 2 pi included) with
    # Gaussian smearing; metal_thresholds replace the band entries of thresholds for metal frames
    fermi_window_eV: float = 1.0
    fermi_kspacing: float = 0.25
    fermi_smearing_eV: float = 0.1
    metal_thresholds: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> Settings:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown validation setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        settings = cls(**data)
        if not 0.0 <= float(settings.overlap_tolerance) < 1.0:
            raise ValueError(
                f"overlap_tolerance must lie in [0, 1) (S is dimensionless, its diagonal is 1), "
                f"got {settings.overlap_tolerance}"
            )
        return settings
