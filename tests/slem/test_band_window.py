"""The bands around the Fermi level by electron count (slem.bands.window)."""

import pytest

from slem.bands.window import fermi_band_window, occupied_bands


def test_occupied_bands_count_two_electrons_per_band_one_per_spinor_band():
    assert occupied_bands(32.0, one_per_band=False) == 16
    assert occupied_bands(32.0, one_per_band=True) == 32
    assert occupied_bands(31.9999, one_per_band=False) == 16  # Tr(DS) to rounding


def test_window_is_clipped_to_the_kept_bands():
    assert fermi_band_window(16, 90, 6) == slice(10, 22)
    assert fermi_band_window(4, 90, 6) == slice(0, 10)
    assert fermi_band_window(16, 18, 6) == slice(10, 18)


@pytest.mark.parametrize(("occupied", "n_bands", "half_width", "fragment"), [
    (0, 10, 2, "leave no empty band"),
    (10, 10, 2, "leave no empty band"),
    (5, 10, 0, "at least 1 band"),
])
def test_window_refuses_impossible_counts(occupied, n_bands, half_width, fragment):
    with pytest.raises(ValueError, match=fragment):
        fermi_band_window(occupied, n_bands, half_width)
