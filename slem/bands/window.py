"""Which bands sit around the Fermi level, by electron count: the bands that cross or nearly cross E_F in a
metal and the band edges in an insulator, without solving for E_F."""

from __future__ import annotations


def occupied_bands(n_electrons: float, one_per_band: bool) -> int:
    """Bands an electron count fills at zero temperature: one electron per band (spinor bands, or the merged
    levels of two spin channels) or two."""
    return int(round(n_electrons / (1 if one_per_band else 2)))


def fermi_band_window(occupied: int, n_bands: int, half_width: int) -> slice:
    """The ``half_width`` highest occupied and ``half_width`` lowest empty of ``n_bands`` ascending bands."""
    if half_width < 1:
        raise ValueError(f"half_width must be at least 1 band, got {half_width}")
    if occupied < 1 or occupied >= n_bands:
        raise ValueError(f"{occupied} occupied bands leave no empty band among the {n_bands} kept ones")
    return slice(max(occupied - half_width, 0), min(occupied + half_width, n_bands))
