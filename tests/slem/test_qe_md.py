"""Seeded Maxwell-Boltzmann starting velocities and harmonic starting positions for pw.x MD."""

from __future__ import annotations

import numpy as np
import pytest

from slem.qe.md import (
    AMU_KG,
    BOLTZMANN_J_PER_K,
    RYDBERG_VELOCITY_M_PER_S,
    harmonic_displacements,
    kinetic_temperature,
    maxwell_boltzmann_velocities,
    run_seed,
)


def test_velocities_have_the_temperature_exactly_and_no_momentum():
    masses = np.array([28.0855] * 5 + [12.011] * 3)
    v = maxwell_boltzmann_velocities(masses, 600.0, run_seed(0, "train_T600"))
    si = v * RYDBERG_VELOCITY_M_PER_S
    assert kinetic_temperature(si, masses * AMU_KG) == pytest.approx(600.0, rel=1e-12)
    np.testing.assert_allclose((masses[:, None] * v).sum(0), 0.0, atol=1e-15)


def test_velocities_follow_the_seed_and_the_run():
    masses = [28.0855] * 8
    a = maxwell_boltzmann_velocities(masses, 300.0, run_seed(0, "train_T300"))
    assert np.array_equal(a, maxwell_boltzmann_velocities(masses, 300.0, run_seed(0, "train_T300")))
    assert not np.allclose(a, maxwell_boltzmann_velocities(masses, 300.0, run_seed(1, "train_T300")))
    assert not np.allclose(a, maxwell_boltzmann_velocities(masses, 300.0, run_seed(0, "held_out_T300")))


def test_units_are_pw_x_rydberg_atomic_units():
    """Measured: pw.x reads velocities drawn this way at 300 K as 299.99992 K (NVE first step); the
    unit is bohr per hbar/Ry = 1.0938e6 m/s (Hartree units would read as 4x the temperature)."""
    assert RYDBERG_VELOCITY_M_PER_S == pytest.approx(1.09384e6, rel=1e-5)


@pytest.mark.parametrize(
    ("masses", "temperature", "match"),
    [
        ([28.0], 300.0, "at least 2 atoms"),
        ([28.0, -1.0], 300.0, "positive"),
        ([28.0, 28.0], 0.0, "temperature"),
    ],
)
def test_bad_input_is_refused(masses, temperature, match):
    with pytest.raises(ValueError, match=match):
        maxwell_boltzmann_velocities(masses, temperature, 0)


def test_harmonic_displacements_have_the_equilibrium_variance_per_mass():
    """Each component's variance is k_B T / (m omega^2) (Si and C differ by their masses), the centre
    of mass does not move, and the draw follows the seed."""
    masses = np.array([28.0855] * 2000 + [12.011] * 2000)
    d = harmonic_displacements(masses, 900.0, 12.0, [3, 4])
    omega = 2 * np.pi * 12e12
    expected = np.sqrt(BOLTZMANN_J_PER_K * 900.0 / (masses * AMU_KG * omega**2)) * 1e10  # Angstrom
    assert d[:2000].std() == pytest.approx(expected[0], rel=0.03)
    assert d[2000:].std() == pytest.approx(expected[-1], rel=0.03)
    np.testing.assert_allclose((masses[:, None] * d).sum(0), 0.0, atol=1e-9)
    assert np.array_equal(d, harmonic_displacements(masses, 900.0, 12.0, [3, 4]))
    assert not np.allclose(d, harmonic_displacements(masses, 900.0, 12.0, [3, 5]))


def test_harmonic_displacements_take_one_frequency_per_atom():
    """Per-atom frequencies: equal masses, different stiffness -> amplitudes in the inverse ratio."""
    masses = np.array([28.0855] * 4000)
    frequencies = np.array([8.0] * 2000 + [16.0] * 2000)
    d = harmonic_displacements(masses, 600.0, frequencies, [7])
    assert d[:2000].std() / d[2000:].std() == pytest.approx(2.0, rel=0.05)
    uniform = harmonic_displacements(masses, 600.0, 8.0, [7])
    assert np.array_equal(uniform, harmonic_displacements(masses, 600.0, np.full(4000, 8.0), [7]))


@pytest.mark.parametrize(
    ("frequency", "match"),
    [(0.0, "Einstein frequency"), (-2.0, "Einstein frequency"), ([10.0, -1.0], "Einstein frequency"),
     ([10.0, 10.0, 10.0], "one per atom")],
)
def test_harmonic_displacements_refuse_bad_input(frequency, match):
    with pytest.raises(ValueError, match=match):
        harmonic_displacements([28.0, 28.0], 300.0, frequency, 0)
    with pytest.raises(ValueError, match="temperature"):
        harmonic_displacements([28.0, 28.0], -1.0, 10.0, 0)
