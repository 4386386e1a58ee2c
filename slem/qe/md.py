"""Seeded starting velocities (and optionally positions) for pw.x molecular dynamics.

pw.x 6.7 draws the starting velocities of a thermostatted run from a clock seed (``start_therm``
calls ``set_random_seed``), so two identical inputs give different trajectories. Velocities given
in the input (``ion_velocities='from_input'`` with an ``ATOMIC_VELOCITIES`` card) skip that draw; the
Andersen thermostat then reproduces too, because its collisions come from QE's generator at its
fixed default seed. The velocity-rescaling thermostats cannot take input velocities in 6.7: their
first step reads a temperature that was never set, and the positions become NaN.

Starting positions drawn from harmonic equilibrium at the run's temperature (``harmonic_displacements``)
spare a short run the time it would take to heat up from the ideal lattice.
"""

from __future__ import annotations

import zlib

import numpy as np

from slem.units import BOHR_ANGSTROM

BOLTZMANN_J_PER_K = 1.380649e-23
AMU_KG = 1.66053906660e-27
BOHR_M = BOHR_ANGSTROM * 1e-10
RYDBERG_TIME_S = 4.8377687e-17  # hbar / Ry: pw.x's unit of time (its dt = 20 is 0.97 fs)
RYDBERG_VELOCITY_M_PER_S = BOHR_M / RYDBERG_TIME_S

# ion_temperature values of pw.x 6.7 that run from input velocities (measured; the others give NaN)
THERMOSTATS_ACCEPTING_INPUT_VELOCITIES = ("andersen", "not_controlled", "initial")


def run_seed(seed: int, label: str) -> list[int]:
    """An RNG seed for one MD run: the user's seed and a stable hash of the run's label, so runs at
    different temperatures start differently and each one the same way every time."""
    return [int(seed), zlib.crc32(label.encode())]


def _checked_masses_kg(masses_amu, temperature: float) -> np.ndarray:
    masses = np.asarray(masses_amu, dtype=np.float64) * AMU_KG
    if masses.ndim != 1 or len(masses) < 2:
        raise ValueError(f"need the masses of at least 2 atoms, got {masses_amu!r}")
    if not np.all(masses > 0):
        raise ValueError(f"atomic masses must be positive, got {masses_amu!r}")
    if not temperature > 0:
        raise ValueError(f"the MD temperature must be positive, got {temperature!r} K")
    return masses


def maxwell_boltzmann_velocities(masses_amu, temperature: float, seed) -> np.ndarray:
    """Velocities (N, 3) in Rydberg atomic units (bohr per hbar/Ry, what pw.x reads) drawn from the
    Maxwell-Boltzmann distribution, with zero total momentum and rescaled so that the kinetic
    temperature over 3N - 3 degrees of freedom (pw.x's count when no atom is fixed) is exactly
    ``temperature``."""
    masses = _checked_masses_kg(masses_amu, temperature)
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(BOLTZMANN_J_PER_K * temperature / masses)
    velocities = rng.normal(size=(len(masses), 3)) * sigma[:, None]
    velocities -= (masses[:, None] * velocities).sum(0) / masses.sum()
    velocities *= np.sqrt(temperature / kinetic_temperature(velocities, masses))
    return velocities / RYDBERG_VELOCITY_M_PER_S


def kinetic_temperature(velocities_m_per_s: np.ndarray, masses_kg: np.ndarray):
    """Temperature (K) with pw.x's 3N - 3 degrees of freedom (the centre of mass is fixed), of one
    frame (N, 3) or of each of several (..., N, 3)."""
    masses_kg = np.asarray(masses_kg, dtype=np.float64)
    kinetic = 0.5 * np.einsum("a,...ai->...", masses_kg, np.asarray(velocities_m_per_s) ** 2)
    return 2.0 * kinetic / ((3 * masses_kg.size - 3) * BOLTZMANN_J_PER_K)


def harmonic_displacements(masses_amu, temperature: float, frequency_thz, seed) -> np.ndarray:
    """Displacements (N, 3) in Angstrom drawn from the classical equilibrium of independent harmonic
    oscillators (an Einstein model) at ``temperature``: each Cartesian component is normal with
    variance k_B T / (m omega^2), omega = 2 pi ``frequency_thz``; the mass-weighted mean is removed so
    that the centre of mass stays put.

    Started from the ideal lattice, an MD run holds only potential energy zero and needs about half a
    vibration period to share the kinetic energy; started from these positions (with Maxwell-Boltzmann
    velocities) it begins near equilibrium at ``temperature``, which a short run needs.

    ``frequency_thz`` is one frequency for all atoms or one per atom (stiff light elements such as C
    vibrate faster than Si)."""
    masses = _checked_masses_kg(masses_amu, temperature)
    frequency = np.asarray(frequency_thz, dtype=float)
    if frequency.ndim > 1 or (frequency.ndim == 1 and len(frequency) != len(masses)):
        raise ValueError(
            f"give one Einstein frequency or one per atom ({len(masses)}), got shape {frequency.shape}"
        )
    if not np.all(frequency > 0):
        raise ValueError(f"the Einstein frequency must be positive, got {frequency_thz!r} THz")
    omega = 2 * np.pi * frequency * 1e12
    sigma_m = np.sqrt(BOLTZMANN_J_PER_K * temperature / (masses * omega**2))
    displacements = np.random.default_rng(seed).normal(size=(len(masses), 3)) * sigma_m[:, None]
    displacements -= (masses[:, None] * displacements).sum(0) / masses.sum()
    return displacements * 1e10
