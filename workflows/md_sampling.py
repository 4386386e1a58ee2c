"""``MdSamplingWorkChain``: pw.x MD on a supercell at several temperatures, then decorrelated snapshots.

Snapshots come from a calcfunction, so every StructureData links back to its trajectory. Held-out
snapshots come from separate runs at other temperatures, never from the training trajectories.
"""

from __future__ import annotations

import math

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, calcfunction, while_
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain
from aiida_slem.calcjobs.checks import check_run, check_spin, excluded

from slem.qe.md import (
    THERMOSTATS_ACCEPTING_INPUT_VELOCITIES,
    maxwell_boltzmann_velocities,
    run_seed,
)

from .dimensionality import in_plane_kpoints, in_plane_supercell, kpoints_from_distance, sheet_problem
from .electronic import apply_electronic_type, smearing_bands, valence_electrons
from .protocols import SlemProtocolMixin, calcjob_options, load_pseudos, pw_parameters
from .strain import strain_problem, strained_cell
from .thermal import displaced, frequency_problem, repeated, site_masses, with_positions


@calcfunction
def make_supercell(structure: orm.StructureData, repetitions: orm.List) -> orm.StructureData:
    """The input cell repeated ``repetitions`` times along each lattice vector."""
    return repeated(structure, repetitions.get_list())


@calcfunction
def harmonic_start(
    structure: orm.StructureData, temperature: orm.Float, frequency: orm.Float | orm.Dict, seed: orm.List
) -> orm.StructureData:
    """``structure`` with its atoms displaced as in harmonic (Einstein model) equilibrium at
    ``temperature`` K and ``frequency`` THz (one for all, or a Dict per element), drawn from ``seed``:
    an MD run's starting positions."""
    return displaced(structure, temperature.value, frequency, seed.get_list())


@calcfunction
def select_snapshots(
    trajectory: orm.TrajectoryData,
    structure: orm.StructureData,
    skip: orm.Int,
    stride: orm.Int,
    count: orm.Int,
) -> dict:
    """Frames skip, skip + stride, ... (``count`` of them) as StructureData with ``structure``'s kinds."""
    positions = trajectory.get_array("positions")
    cells = trajectory.get_array("cells") if "cells" in trajectory.get_arraynames() else None
    indices = skip.value + stride.value * np.arange(count.value)
    if indices[-1] >= len(positions):
        raise ValueError(f"the trajectory has {len(positions)} frames, frame {indices[-1]} is needed")
    snapshots = {}
    for number, index in enumerate(indices):
        cell = structure.cell if cells is None else cells[min(index, len(cells) - 1)]
        snapshot = with_positions(structure, positions[index], cell)
        snapshot.base.extras.set("md_step", int(index))
        snapshots[f"frame_{number:03d}"] = snapshot
    return snapshots


def validate_inputs(inputs: dict, ctx) -> str | None:
    error = check_spin(inputs["md"]["pw"]["parameters"].get_dict())
    if error:
        return error
    if not inputs["temperatures"].get_list():
        return "give at least one temperature"
    settings = inputs["md"]["pw"].get("settings")
    if settings is not None and "ATOMIC_VELOCITIES" in settings.get_dict():
        return "md.pw.settings must not hold ATOMIC_VELOCITIES: each run's come from the `seed` input"
    if inputs["max_concurrent"].value < 0:
        return "max_concurrent must be >= 0 (0: every MD run at once)"
    if (
        inputs["stride"].value < 1
        or inputs["n_snapshots"].value < 1
        or inputs["equilibration_steps"].value < 0
    ):
        return "stride and n_snapshots must be >= 1 and equilibration_steps >= 0"
    if excluded(ctx, "structure"):
        return None  # exposed in SlemPipelineWorkChain, which checks each of its structures
    structure = inputs["structure"]
    md = inputs["md"]["pw"]
    error = check_run(structure, dict(md["pseudos"]), md["parameters"].get_dict())
    if error:
        return error
    error = sheet_problem(structure, inputs["supercell"].get_list(), inputs["md"].get("kpoints"))
    if error:
        return error
    error = strain_problem(inputs["strains"].get_list(), structure)
    if error:
        return error
    frequency = inputs.get("einstein_frequency")
    return None if frequency is None else frequency_problem(structure, frequency)


def snapshots_for(n_snapshots: int, training_atoms: int | None, n_atoms: int, n_trajectories: int) -> int:
    """Snapshots per training trajectory: at least ``n_snapshots``, and enough for ``training_atoms`` atoms
    over all training trajectories. A 3-atom MoS2 cell has too few environments in 8 snapshots for its
    hoppings to generalise (docs/aiida.md, "Fast protocol: training atoms"); an 8-atom cell is unchanged."""
    if not training_atoms:
        return int(n_snapshots)
    return max(int(n_snapshots), math.ceil(training_atoms / (n_atoms * max(n_trajectories, 1))))


def run_label(kind: str, temperature: float) -> str:
    return f"{kind}_T{int(round(temperature))}"


class MdSamplingWorkChain(SlemProtocolMixin, WorkChain):
    """MD (PwBaseWorkChain, ``calculation='md'``) per temperature, then snapshots after equilibration."""

    _protocol_file = "md_sampling.yaml"
    _extra_override_keys = ("pseudos",)

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(
            PwBaseWorkChain,
            namespace="md",
            exclude=("pw.structure", "clean_workdir"),
            namespace_options={
                "help": "Inputs of the MD runs; CONTROL.nstep and IONS.tempw are set per run."
            },
        )
        spec.input(
            "structure", valid_type=orm.StructureData, help="The cell to repeat into the MD supercell."
        )
        spec.input("supercell", valid_type=orm.List, default=lambda: orm.List([1, 1, 1]))
        spec.input("temperatures", valid_type=orm.List, help="Temperatures (K) of the training-pool runs.")
        spec.input(
            "held_out_temperatures",
            valid_type=orm.List,
            default=lambda: orm.List([]),
            help="Temperatures (K) of separate runs whose snapshots are held out.",
        )
        spec.input(
            "seed",
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            help="Seed of each run's starting velocities (Maxwell-Boltzmann at its temperature, zero "
            "momentum; and of its harmonic starting positions with `einstein_frequency`), passed when the "
            "thermostat takes input velocities (andersen, not_controlled, initial): the same inputs then "
            "give the same trajectories. pw.x 6.7 cannot start the "
            "rescaling thermostats from input velocities (NaN positions), and draws from a clock seed.",
        )
        spec.input(
            "einstein_frequency",
            valid_type=(orm.Float, orm.Dict),
            required=False,
            help="THz, one for all atoms or a Dict per element ({'Si': 10.0, 'C': 25.0}). Start each "
            "run from positions displaced as in harmonic equilibrium at its temperature (independent "
            "oscillators of this frequency, seeded like the velocities; `harmonic_start` calcfunction) "
            "instead of from the supercell itself, where a short run starts with no potential energy and "
            "stays colder than its temperature.",
        )
        spec.input(
            "strains",
            valid_type=orm.List,
            default=lambda: orm.List([]),
            help="Voigt strains (xx, yy, zz, yz, xz, xy; engineering shears) of the supercell: each adds "
            "training-pool runs at every training temperature on the strained cell (workflows/strain.py).",
        )
        spec.input("equilibration_steps", valid_type=orm.Int, default=lambda: orm.Int(10))
        spec.input("stride", valid_type=orm.Int, default=lambda: orm.Int(5))
        spec.input("n_snapshots", valid_type=orm.Int, default=lambda: orm.Int(4))
        spec.input("n_held_out", valid_type=orm.Int, default=lambda: orm.Int(2))
        spec.input(
            "max_concurrent",
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            help="At most this many MD runs at once (0: all at once). On a workstation, more pw.x runs than "
            "cores only share the cores and hold their memory; a pipeline with a bound also runs its "
            "structures' MD one structure after another, so the bound holds for the whole pipeline.",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.has_pending)(cls.run_md),
            cls.inspect_md,
            cls.select,
            cls.results,
        )
        spec.output("supercell", valid_type=orm.StructureData)
        spec.output_namespace("trajectories", valid_type=orm.TrajectoryData, dynamic=True)
        spec.output_namespace("snapshots.train", valid_type=orm.StructureData, dynamic=True)
        spec.output_namespace("snapshots.held_out", valid_type=orm.StructureData, dynamic=True)
        spec.exit_code(401, "ERROR_MD_FAILED", message="The MD run {label} failed with exit status {status}.")
        spec.exit_code(
            402,
            "ERROR_TRAJECTORY_TOO_SHORT",
            message="The MD run {label} has {frames} frames; {needed} are needed for the snapshots.",
        )

    @classmethod
    def get_builder_from_protocol(
        cls, code, structure, protocol=None, overrides=None, options=None, electronic_type=None, **_
    ):
        """Builder for ``protocol`` (fast, balanced, precise) with ``overrides`` merged in and ``options``
        set on every pw.x job. A sheet (vacuum rule, ``workflows/dimensionality.py``) is repeated in-plane
        only and gets one unshifted k-point along its vacuum axis."""
        inputs = apply_electronic_type(cls.get_protocol_inputs(protocol, overrides), electronic_type)
        code = orm.load_code(code) if isinstance(code, str) else code
        pseudos = inputs.get("pseudos") or load_pseudos(structure, inputs["pseudo_family"])
        supercell = in_plane_supercell(structure, inputs["supercell"])
        n_atoms = len(structure.sites) * int(np.prod(supercell))
        builder = cls.get_builder()
        builder.structure = structure
        builder.supercell = orm.List(supercell)
        builder.temperatures = orm.List([float(t) for t in inputs["temperatures"]])
        builder.held_out_temperatures = orm.List([float(t) for t in inputs["held_out_temperatures"]])
        for key in ("equilibration_steps", "stride", "n_held_out", "seed", "max_concurrent"):
            builder[key] = orm.Int(inputs[key])
        strains = [[float(x) for x in strain] for strain in inputs.get("strains") or []]
        builder.strains = orm.List(strains)
        n_trajectories = len(inputs["temperatures"]) * (1 + len(strains))
        builder.n_snapshots = orm.Int(
            snapshots_for(inputs["n_snapshots"], inputs.get("training_atoms"), n_atoms, n_trajectories)
        )
        frequency = inputs.get("einstein_frequency")
        if isinstance(frequency, dict):
            builder.einstein_frequency = orm.Dict({str(k): float(v) for k, v in frequency.items()})
        elif frequency:
            builder.einstein_frequency = orm.Float(frequency)
        builder.md.pw.code = code
        builder.md.pw.pseudos = pseudos
        parameters = pw_parameters(inputs, n_atoms, structure, cls.protocol_name(protocol))
        n_electrons = valence_electrons(structure, pseudos, int(np.prod(supercell)))
        builder.md.pw.parameters = orm.Dict(smearing_bands(inputs, parameters, n_electrons))
        builder.md.pw.metadata.options = calcjob_options(inputs["options"], options)
        builder.md.pw.metadata.options["parser_name"] = "slem.md"
        if "kpoints_mesh" in inputs:
            builder.md.kpoints = in_plane_kpoints(structure, inputs["kpoints_mesh"], inputs["kpoints_offset"])
        else:  # a k-point distance (metals): the mesh of the supercell the MD runs on
            repeated = orm.StructureData(ase=structure.get_ase().repeat(tuple(int(n) for n in supercell)))
            builder.md.kpoints = kpoints_from_distance(repeated, inputs["kpoints_distance"])
        builder.md.max_iterations = orm.Int(inputs["max_iterations"])
        return builder

    def setup(self):
        self.ctx.supercell = make_supercell(self.inputs.structure, self.inputs.supercell)
        # run label -> its supercell: the MD supercell, or a strained copy (training-pool runs only)
        self.ctx.cells = {}
        n_train, n_held = self.inputs.n_snapshots.value, self.inputs.n_held_out.value
        runs = {}
        for t in self.inputs.temperatures.get_list():
            runs[run_label("train", t)] = ("train", float(t), n_train)
            self.ctx.cells[run_label("train", t)] = self.ctx.supercell
        for number, strain in enumerate(self.inputs.strains.get_list(), start=1):
            cell = strained_cell(
                self.ctx.supercell, orm.List(strain), metadata={"call_link_label": f"strain_{number}"}
            )
            for t in self.inputs.temperatures.get_list():
                runs[f"{run_label('train', t)}_strain{number}"] = ("train", float(t), n_train)
                self.ctx.cells[f"{run_label('train', t)}_strain{number}"] = cell
        for t in self.inputs.held_out_temperatures.get_list():
            runs[run_label("held_out", t)] = ("held_out", float(t), n_held)
            self.ctx.cells[run_label("held_out", t)] = self.ctx.supercell
        self.ctx.runs = {label: run for label, run in runs.items() if run[2] > 0}
        self.ctx.pending = list(self.ctx.runs)

    def has_pending(self) -> bool:
        return bool(self.ctx.pending)

    def steps_needed(self, count: int) -> int:
        return self.inputs.equilibration_steps.value + self.inputs.stride.value * (count - 1) + 1

    def run_md(self):
        ions = self.inputs.md.pw.parameters.get_dict().get("IONS", {})
        thermostat = str(ions.get("ion_temperature", "not_controlled")).lower()
        seeded = thermostat in THERMOSTATS_ACCEPTING_INPUT_VELOCITIES
        if not seeded:
            self.report(
                f"thermostat {thermostat!r}: pw.x draws the starting velocities from a clock seed, so "
                "these trajectories are not reproducible run to run ('andersen' would be)"
            )
        bound = self.inputs.max_concurrent.value or len(self.ctx.pending)
        batch, self.ctx.pending = self.ctx.pending[:bound], self.ctx.pending[bound:]
        futures = {}
        for label in batch:
            _, temperature, count = self.ctx.runs[label]
            inputs = AttributeDict(self.exposed_inputs(PwBaseWorkChain, namespace="md"))
            inputs.pw.structure = self.starting_structure(label, temperature)
            parameters = inputs.pw.parameters.get_dict()
            ions = parameters.setdefault("IONS", {})
            ions["tempw"] = temperature
            parameters["CONTROL"]["nstep"] = self.steps_needed(count)
            if seeded:
                ions["ion_velocities"] = "from_input"
                settings = inputs.pw.settings.get_dict() if "settings" in inputs.pw else {}
                settings["ATOMIC_VELOCITIES"] = self.starting_velocities(label, temperature).tolist()
                inputs.pw.settings = orm.Dict(settings)
            inputs.pw.parameters = orm.Dict(parameters)
            inputs.clean_workdir = orm.Bool(False)
            inputs.metadata = {"call_link_label": f"md_{label}"}
            futures[label] = self.submit(PwBaseWorkChain, **inputs)
            self.report(f"launched PwBaseWorkChain<{futures[label].pk}> for MD run {label}")
        return ToContext(**futures)

    def run_fingerprint(self, label: str) -> str:
        """The run and the structure's content, so that two structures of a pipeline (or two runs of one)
        never share a random draw, and a fresh rerun gets the same one."""
        supercell = self.ctx.cells[label]
        content = np.round(np.array([site.position for site in supercell.sites] + supercell.cell), 6) + 0.0
        return f"{label}|{supercell.get_formula()}|{content.tobytes().hex()}"

    def starting_velocities(self, label: str, temperature: float):
        seed = run_seed(self.inputs.seed.value, self.run_fingerprint(label))
        return maxwell_boltzmann_velocities(site_masses(self.ctx.cells[label]), temperature, seed)

    def starting_structure(self, label: str, temperature: float) -> orm.StructureData:
        if "einstein_frequency" not in self.inputs:
            return self.ctx.cells[label]
        # a seed of its own: the same draw as the velocities would correlate positions with velocities
        seed = run_seed(self.inputs.seed.value, f"positions|{self.run_fingerprint(label)}")
        return harmonic_start(
            self.ctx.cells[label], orm.Float(temperature), self.inputs.einstein_frequency, orm.List(seed),
            metadata={"call_link_label": f"start_{label}"},
        )

    def inspect_md(self):
        for label, (_, _, count) in self.ctx.runs.items():
            node = self.ctx[label]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MD_FAILED.format(label=label, status=node.exit_status)
            frames = len(node.outputs.output_trajectory.get_array("positions"))
            needed = self.steps_needed(count)
            if frames < needed:
                return self.exit_codes.ERROR_TRAJECTORY_TOO_SHORT.format(
                    label=label, frames=frames, needed=needed
                )
        return None

    def select(self):
        self.ctx.snapshots = {"train": {}, "held_out": {}}
        self.ctx.trajectories = {}
        for label, (kind, _, count) in self.ctx.runs.items():
            trajectory = self.ctx[label].outputs.output_trajectory
            self.ctx.trajectories[label] = trajectory
            picked = select_snapshots(
                trajectory,
                self.ctx.cells[label],
                self.inputs.equilibration_steps,
                self.inputs.stride,
                orm.Int(count),
                metadata={"call_link_label": f"select_{label}"},
            )
            for name, structure in picked.items():
                self.ctx.snapshots[kind][f"{label}_{name}"] = structure

    def results(self):
        self.out("supercell", self.ctx.supercell)
        for label, trajectory in self.ctx.trajectories.items():
            self.out(f"trajectories.{label}", trajectory)
        for kind, snapshots in self.ctx.snapshots.items():
            for name, structure in snapshots.items():
                self.out(f"snapshots.{kind}.{name}", structure)
        self.report(
            f"{len(self.ctx.snapshots['train'])} training-pool and "
            f"{len(self.ctx.snapshots['held_out'])} held-out snapshots"
        )
