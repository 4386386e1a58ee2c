"""``slem.md``: aiida-quantumespresso's ``PwParser`` plus the velocities and temperatures of a pw.x MD run.

QE 6.7 prints only the temperature of each MD step, never the velocities, and the stock parser keeps
neither. pw.x's Verlet integrator takes the velocity of step k as the central difference
(tau_{k+1} - tau_{k-1}) / 2dt, which equals (tau_{k+1} - tau_k) / dt - a_k dt / 2 with a_k = F_k / m.
The second form needs only the step's own positions and forces plus the next positions, so it also holds
for the first step (whose tau_{-1} was never written) and reproduces pw.x's temperatures to ~1e-6.
"""

from __future__ import annotations

import re

import numpy as np
from aiida_quantumespresso.parsers.pw import PwParser
from ase import units

from slem.qe import md

# pw.x's time unit is the Rydberg atomic unit of time, 2 hbar / E_h
RY_TIME_FS = 2.0 * units._aut * 1.0e15
DEFAULT_DT_RY = 20.0
TEMPERATURE_RE = re.compile(r"^\s+temperature\s+=\s+([-+0-9.Ee]+)\s+K", re.MULTILINE)
TEMPERATURE_TOLERANCE = 0.01  # relative; larger deviations mean the reconstruction does not apply


def parse_temperatures(stdout: str) -> np.ndarray:
    """Instantaneous ionic temperature (K) of every MD step, in order."""
    return np.array([float(value) for value in TEMPERATURE_RE.findall(stdout)])


def verlet_velocities(
    positions: np.ndarray, final_positions: np.ndarray, forces: np.ndarray, masses: np.ndarray, dt_fs: float
) -> np.ndarray:
    """Velocities (Angstrom/ps) of each frame from positions (Angstrom), forces (eV/Angstrom), masses (amu).

    ``positions`` holds the N frames at which forces were computed, ``final_positions`` the positions
    after the last step."""
    following = np.concatenate([positions[1:], final_positions[None]], axis=0)
    dt = dt_fs * units.fs
    acceleration = forces / masses[None, :, None]
    velocities = (following - positions) / dt - 0.5 * acceleration * dt
    return velocities * (1000.0 * units.fs)  # ASE velocity unit -> Angstrom/ps


def kinetic_temperature(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Temperature (K) per frame from velocities (Angstrom/ps) and masses (amu): slem's pw.x count."""
    return md.kinetic_temperature(100.0 * np.asarray(velocities), md.AMU_KG * np.asarray(masses))


class SlemMdParser(PwParser):
    """Adds ``velocities`` (Angstrom/ps), ``temperatures`` (K) and ``times`` (ps) to ``output_trajectory``."""

    def emit_logs(self, logs_dict, ignore=None) -> None:
        # pw.x ends a fixed-length MD at nstep with "maximum number of steps has been reached", which the
        # stock parser logs as ERROR_IONIC_CONVERGENCE_NOT_REACHED: for MD that is the normal end, and the
        # error line alarmed users of a successful run. Exit codes are decided elsewhere and are unchanged.
        if self.get_calculation_type() in ("md", "vc-md"):
            ignore = [*(ignore or []), "ERROR_IONIC_CONVERGENCE_NOT_REACHED"]
        super().emit_logs(logs_dict, ignore)

    def build_output_trajectory(self, parsed_trajectory, structure):
        trajectory = PwParser.build_output_trajectory(parsed_trajectory, structure)
        if self.get_calculation_type() != "md" or trajectory is None:
            return trajectory
        filename = self.node.base.attributes.get("output_filename")
        try:
            stdout = self.retrieved.base.repository.get_object_content(filename)
        except (FileNotFoundError, OSError):
            return trajectory  # the stock parser reports the missing stdout
        temperatures = parse_temperatures(stdout)
        positions = trajectory.get_array("positions")
        n_frames = min(len(temperatures), len(positions))
        if n_frames == 0:
            self.logger.warning("no MD step with a temperature was found in the output; velocities not added")
            return trajectory
        self._add_dynamics(trajectory, structure, positions, temperatures, n_frames)
        return trajectory

    def _add_dynamics(self, trajectory, structure, positions, temperatures, n_frames) -> None:
        input_structure = self.node.inputs.structure
        masses = np.array([input_structure.get_kind(site.kind_name).mass for site in input_structure.sites])
        dt_ry = self.node.inputs.parameters.get_dict().get("CONTROL", {}).get("dt", DEFAULT_DT_RY)
        dt_fs = float(dt_ry) * RY_TIME_FS
        forces = (
            trajectory.get_array("forces")[:n_frames] if "forces" in trajectory.get_arraynames() else None
        )
        # positions after the last complete step: the next frame, or the final structure if all completed
        if n_frames < len(positions):
            final = positions[n_frames]
        else:
            final = np.array([site.position for site in structure.sites])
        trajectory.set_array("temperatures", temperatures[:n_frames])
        trajectory.set_array("times", np.arange(n_frames) * dt_fs / 1000.0)
        if forces is None:
            self.logger.warning("the trajectory has no forces (set tprnfor); velocities not reconstructed")
            return
        velocities = verlet_velocities(positions[:n_frames], final, forces, masses, dt_fs)
        check = kinetic_temperature(velocities, masses)
        deviation = np.abs(check - temperatures[:n_frames]) / np.maximum(temperatures[:n_frames], 1e-8)
        trajectory.set_array("velocities", velocities)
        trajectory.base.attributes.set("velocity_temperature_max_relative_error", float(deviation.max()))
        median = float(np.median(deviation))
        trajectory.base.attributes.set("velocity_temperature_median_relative_error", median)
        if deviation.max() > TEMPERATURE_TOLERANCE:
            # At an Andersen collision pw.x removes the new centre-of-mass drift from the positions but
            # only half of it from the velocity it prints: the rebuilt velocities follow the positions.
            self.logger.warning(
                f"velocities rebuilt from the Verlet positions differ from pw.x's printed temperatures by "
                f"up to {deviation.max():.1%} (median {median:.1e}): thermostat steps (rescaling, or "
                "Andersen collisions, where pw.x prints a temperature that still holds half of the "
                "removed centre-of-mass drift)"
            )


__all__ = ["SlemMdParser", "kinetic_temperature", "parse_temperatures", "verlet_velocities"]
