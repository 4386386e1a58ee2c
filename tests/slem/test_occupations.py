"""pw.x's smearing functions (QE wgauss / w0gauss) and the Fermi-level solve on synthetic bands."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import erfc

from slem.projection.occupations import (
    SMEARING_KINDS,
    electron_count,
    fermi_level,
    occupation,
    occupation_derivative,
    smearing_kind,
)

# f(0) in closed form: 1/2 for the symmetric ones; cold smearing is shifted by 1/sqrt(2)
AT_ZERO = {
    "gaussian": 0.5,
    "mp": 0.5,
    "fd": 0.5,
    "mv": 0.5 * erfc(1 / np.sqrt(2)) + np.exp(-0.5) / np.sqrt(2 * np.pi),
}


@pytest.mark.parametrize("kind", SMEARING_KINDS)
def test_limits_value_at_zero_and_derivative(kind):
    assert occupation(0.0, kind) == pytest.approx(AT_ZERO[kind], abs=1e-15)
    assert occupation(40.0, kind) == pytest.approx(1.0, abs=1e-15)
    assert occupation(-40.0, kind) == pytest.approx(0.0, abs=1e-15)
    x = np.linspace(-6, 6, 241)
    h = 1e-5
    numeric = (occupation(x + h, kind) - occupation(x - h, kind)) / (2 * h)
    assert np.abs(numeric - occupation_derivative(x, kind)).max() < 1e-9
    total, _ = quad(lambda t: occupation_derivative(t, kind), -60, 60, points=[0.0], limit=200)
    assert total == pytest.approx(1.0, abs=1e-10)


def test_known_values():
    # QE wgauss by hand: gaussian 0.5 erfc(-x); MP1 adds x exp(-x^2) / (2 sqrt(pi))
    assert occupation(1.0, "gaussian") == pytest.approx(0.5 * erfc(-1.0), rel=1e-15)
    assert occupation(-1.0, "mp") == pytest.approx(
        0.5 * erfc(1.0) - np.exp(-1.0) / (2 * np.sqrt(np.pi)), rel=1e-14
    )
    assert occupation(2.0, "fd") == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-15)
    # Methfessel-Paxton dips below 0 and overshoots 1, cold smearing stays >= 0 but overshoots 1 (its
    # delta is negative for x > sqrt(2)), as in pw.x; Gaussian and Fermi-Dirac are monotonic in [0, 1]
    x = np.linspace(-5, 5, 2001)
    assert occupation(x, "mp").min() < -0.03 and occupation(x, "mp").max() > 1.03
    assert occupation(x, "mv").min() >= 0.0 and occupation(x, "mv").max() > 1.08
    for kind in ("gaussian", "fd"):
        f = occupation(x, kind)
        assert f.min() >= 0.0 and f.max() <= 1.0 and np.all(np.diff(f) >= 0)


def test_aliases_are_pw_x_names():
    assert {smearing_kind(a) for a in ("cold", "m-v", "Marzari-Vanderbilt")} == {"mv"}
    assert {smearing_kind(a) for a in ("m-p", "methfessel-paxton")} == {"mp"}
    assert {smearing_kind(a) for a in ("f-d", "fermi-dirac", "gauss")} == {"fd", "gaussian"}
    with pytest.raises(ValueError, match="gaussian, mp"):
        smearing_kind("tetrahedra")


@pytest.mark.parametrize("kind", SMEARING_KINDS)
@pytest.mark.parametrize("n_electrons", [3.0, 8.0, 5.5])
def test_fermi_level_counts_the_electrons(kind, n_electrons):
    rng = np.random.default_rng(3)
    eps = np.sort(rng.uniform(-5.0, 5.0, (40, 12)), axis=1)
    weights = rng.integers(1, 4, 40).astype(float)
    width = 0.2
    e_f = fermi_level(eps, weights, n_electrons, width, kind)
    assert electron_count(eps, weights / weights.sum(), e_f, width, kind) == pytest.approx(
        n_electrons, abs=1e-11
    )


def test_fermi_level_of_an_insulator_with_narrow_smearing_lies_in_the_gap():
    eps = np.array([[-2.0, -1.0, 1.0, 2.0], [-2.5, -1.2, 1.3, 2.2]])
    e_f = fermi_level(eps, np.ones(2), 4.0, 0.01, "gaussian")
    assert -1.0 < e_f < 1.0
    with pytest.raises(ValueError, match="do not fit"):
        fermi_level(eps, np.ones(2), 8.0, 0.01, "gaussian")


def test_cold_smearing_of_a_magnetic_insulator_fills_whole_channels():
    """Two channels side by side, one k: the majority channel's valence top at 0, the minority's 90 meV below,
    a 1.18 eV gap and mv smearing of 68 meV (CrI3's). The count also has a root 58 meV above the valence top,
    where mv's overshoot moves 0.027 electrons from the majority to the minority channel; E_F must instead be
    the middle of the gap, where both channels hold whole electrons, as in pw.x."""
    up = np.array([[-3.0, -1.0, -0.2, 0.0, 1.18, 2.0]])
    down = np.array([[-3.0, -1.2, -0.09, 1.9, 2.2, 2.5]])
    width = 0.005 * 13.605693
    e_f = fermi_level(np.concatenate([up, down], axis=1), np.ones(1), 7.0, width, "mv", degeneracy=1.0)
    assert e_f == pytest.approx(0.59)
    assert occupation((e_f - up) / width, "mv").sum() == pytest.approx(4.0, abs=1e-12)
    assert occupation((e_f - down) / width, "mv").sum() == pytest.approx(3.0, abs=1e-12)
    # the edge root is a root: the midpoint is a choice among roots, not a different electron count
    edge = 0.058115835479361715
    counts = [occupation((edge - c) / width, "mv").sum() for c in (up, down)]
    assert sum(counts) == pytest.approx(7.0, abs=1e-9) and counts[0] - counts[1] < 0.95


def test_a_gap_narrower_than_the_smearing_keeps_the_root_finder():
    eps = np.array([[-1.0, 0.0, 0.1, 0.1]])  # a doubly degenerate state above the 0.1 eV gap
    width = 0.02  # 5 widths: the edges' occupations are fractional, so E_F is the count's root
    e_f = fermi_level(eps, np.ones(1), 4.0, width, "gaussian")
    assert electron_count(eps, np.ones(1), e_f, width, "gaussian") == pytest.approx(4.0, abs=1e-11)
    assert e_f < 0.05 - 1e-3  # the two states above pull E_F below the middle of the gap
