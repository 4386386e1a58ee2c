"""``SlemTrainWorkChain``: ``slem.train`` with restarts after walltime, out-of-memory and NaN losses."""

from __future__ import annotations

import copy

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from aiida_quantumespresso.workflows.protocols.utils import recursive_merge
from aiida_slem.calcjobs.train import SlemTrainCalculation

from slem.train.duration import with_duration

from .magnetism import spin_operators, spin_orbit_operators
from .protocols import SlemProtocolMixin, calcjob_options


def _layered(base: dict, top: dict) -> dict:
    """``top`` merged into ``base``; a training duration in ``top`` (max_steps, or epochs and their bounds)
    replaces ``base``'s whole duration, so a user's ``max_steps`` overrides the fast protocol's epochs."""
    merged = recursive_merge(base, top)
    training = merged.get("config", {}).get("training")
    if training is not None:
        given = (top.get("config") or {}).get("training") or {}
        merged["config"]["training"] = with_duration(training, given)
    return merged


class SlemTrainWorkChain(SlemProtocolMixin, BaseRestartWorkChain):
    """Train a SLEM model; resume from checkpoints when the walltime ends a run, and adapt the config
    when a run runs out of memory or its loss diverges."""

    _process_class = SlemTrainCalculation
    _protocol_file = "train.yaml"

    defaults = AttributeDict(
        {
            "walltime_growth": 2.0,  # when a run stopped before writing a new checkpoint
            "lr_factor": 0.1,
            "max_lr_reductions": 3,
            "first_edge_chunk": 4096,
            "min_edge_chunk": 64,
        }
    )

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(SlemTrainCalculation, namespace="train")
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(
                cls.run_process,
                cls.inspect_process,
            ),
            cls.results,
        )
        spec.expose_outputs(SlemTrainCalculation)
        spec.exit_code(
            300,
            "ERROR_UNRECOVERABLE_FAILURE",
            message="The training failed in a way that a restart cannot fix: {message}",
        )

    @classmethod
    def get_builder_from_protocol(
        cls, code, dataset=None, protocol=None, overrides=None, options=None, gpus=None, basis=None,
        sheet=False, spin=False, spin_orbit=False, **_
    ):
        """Builder with ``train.yaml``: the training config, GPUs, restarts and job options of ``protocol``.

        ``overrides`` merge into the protocol (keys as in the YAML: ``config``, ``gpus``, ``max_iterations``,
        ``options``); ``options`` go to the job's ``metadata.options``; ``gpus`` replaces the protocol's.
        ``sheet``: the data are 2D sheets (``workflows/dimensionality.py``); the protocol's ``sheet`` settings
        then apply, under the overrides. ``dataset`` (and ``basis``, used when the config takes S from the
        basis) may be set later, as the pipeline does once its dataset exists. ``spin``: the frames are
        spin-polarised (``magnetization``): the config's H and D become one operator per channel (H_up,
        H_down, D_up, D_down); channels the overrides name stay as they are. ``spin_orbit``: the frames hold
        spin-orbit parts, which the model learns beside H (H_so_x, H_so_y, H_so_z)."""
        with_user = cls.get_protocol_inputs(protocol, overrides)  # refuses unknown override keys
        sheet_settings = with_user["sheet"] if sheet else {}
        user = {key: value for key, value in (overrides or {}).items() if key != "sheet"}
        inputs = _layered(_layered(cls.get_protocol_inputs(protocol), sheet_settings), user)
        inputs.pop("sheet", None)
        if spin:
            inputs["config"]["operators"] = spin_operators(inputs["config"]["operators"])
        if spin_orbit:
            inputs["config"]["operators"] = spin_orbit_operators(inputs["config"]["operators"])
        builder = cls.get_builder()
        builder.max_iterations = orm.Int(inputs["max_iterations"])
        builder.train.code = orm.load_code(code) if isinstance(code, (str, int)) else code
        builder.train.config = orm.Dict(inputs["config"])
        builder.train.gpus = orm.Int(int(inputs["gpus"] if gpus is None else gpus))
        builder.train.metadata.options = calcjob_options(inputs["options"], options)
        if dataset is not None:
            builder.train.dataset = dataset
        if basis is not None and inputs["config"].get("model", {}).get("overlap") == "basis":
            builder.train.basis = basis
        return builder

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(SlemTrainCalculation, "train"))
        self.ctx.config = self.ctx.inputs.config.get_dict()
        self.ctx.checkpoint_step = 0
        self.ctx.lr_reductions = 0

    def _set_training(self, **changes) -> None:
        config = copy.deepcopy(self.ctx.config)
        config.setdefault("training", {}).update(changes)
        self.ctx.config = config
        self.ctx.inputs.config = orm.Dict(config)

    def _restart_from_scratch(self) -> None:
        self.ctx.inputs.pop("parent_folder", None)
        self.ctx.checkpoint_step = 0

    def report_error_handled(self, calculation, action: str) -> None:
        self.report(
            f"{calculation.process_label}<{calculation.pk}> failed with exit status "
            f"{calculation.exit_status}: {calculation.exit_message}"
        )
        self.report(f"Action taken: {action}")

    @process_handler(
        priority=600,
        exit_codes=[
            SlemTrainCalculation.exit_codes.ERROR_CONFIG,
            SlemTrainCalculation.exit_codes.ERROR_INVALID_MODEL,
        ],
    )
    def handle_unrecoverable(self, calculation):
        """The config or the produced model is wrong: a restart would fail the same way."""
        self.report_error_handled(calculation, "none, aborting")
        return ProcessHandlerReport(
            True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(message=calculation.exit_message)
        )

    @process_handler(priority=500, exit_codes=[SlemTrainCalculation.exit_codes.ERROR_OUT_OF_WALLTIME])
    def handle_out_of_walltime(self, calculation):
        """Resume from the run's latest checkpoint; if it wrote none, grow the walltime instead."""
        step = _reported_step(calculation)
        if step is not None and step > self.ctx.checkpoint_step:
            self.ctx.checkpoint_step = step
            # a fine-tuning run keeps parent_model: the weights come from the checkpoint, but the parent
            # still completes the architecture that the config's model section leaves out
            self.ctx.inputs.parent_folder = calculation.outputs.remote_folder
            self.report_error_handled(calculation, f"resuming from the checkpoint of step {step}")
            return ProcessHandlerReport(True)
        options = self.ctx.inputs.metadata.options
        walltime = options.get("max_wallclock_seconds")
        if walltime:
            options["max_wallclock_seconds"] = int(walltime * self.defaults.walltime_growth)
            action = (
                f"no new checkpoint (stopped during start-up): max_wallclock_seconds {walltime} -> "
                f"{options['max_wallclock_seconds']}"
            )
        else:
            action = "no new checkpoint and no walltime option to grow: restarting unchanged"
        self.report_error_handled(calculation, action)
        return ProcessHandlerReport(True)

    @process_handler(priority=450, exit_codes=[SlemTrainCalculation.exit_codes.ERROR_OUT_OF_MEMORY])
    def handle_out_of_memory(self, calculation):
        """Shrink the batch (a new data order, so from scratch): drop batch_atoms, then halve batch_size;
        at batch size 1 chunk the edges instead."""
        training = self.ctx.config.get("training", {})
        batch_size = int(training.get("batch_size", 1))
        edge_chunk = training.get("edge_chunk")
        if training.get("batch_atoms"):
            # batch_atoms grows the batch beyond batch_size for small frames: drop it first
            self._set_training(batch_atoms=None)
            self._restart_from_scratch()
            action = f"batch_atoms {training['batch_atoms']} -> none (batch_size {batch_size}), from scratch"
        elif batch_size > 1:
            self._set_training(batch_size=batch_size // 2)
            self._restart_from_scratch()
            action = f"batch_size {batch_size} -> {batch_size // 2}, restarting from scratch"
        elif edge_chunk is None or edge_chunk // 2 >= self.defaults.min_edge_chunk:
            new_chunk = self.defaults.first_edge_chunk if edge_chunk is None else edge_chunk // 2
            self._set_training(edge_chunk=new_chunk)
            action = (
                f"edge_chunk {edge_chunk} -> {new_chunk}"  # the data order is unchanged: resume if possible
            )
            if "parent_folder" in self.ctx.inputs or _reported_step(calculation):
                self.ctx.inputs.parent_folder = calculation.outputs.remote_folder
                action += ", resuming from the latest checkpoint"
        else:
            self.report_error_handled(calculation, "none: batch_size is 1 and edge_chunk is at its minimum")
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(
                    message="out of memory at batch_size 1 and the smallest edge_chunk; request more "
                    "(GPU) memory or a smaller model"
                ),
            )
        self.report_error_handled(calculation, action)
        return ProcessHandlerReport(True)

    @process_handler(priority=400, exit_codes=[SlemTrainCalculation.exit_codes.ERROR_NAN_LOSS])
    def handle_nan_loss(self, calculation):
        """Lower the learning rate and train again from scratch.

        A checkpoint restores the optimizer with its old learning rate, so resuming would diverge again;
        starting over with the smaller rate is the reproducible choice."""
        if self.ctx.lr_reductions >= self.defaults.max_lr_reductions:
            self.report_error_handled(
                calculation, f"none: the learning rate was already lowered {self.ctx.lr_reductions} times"
            )
            return ProcessHandlerReport(
                True,
                self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(
                    message="the loss diverges even at a much lower learning rate; check the dataset "
                    "for bad frames"
                ),
            )
        lr = float(self.ctx.config.get("training", {}).get("lr", _default_lr()))
        new_lr = lr * self.defaults.lr_factor
        self.ctx.lr_reductions += 1
        self._set_training(lr=new_lr)
        self._restart_from_scratch()
        self.report_error_handled(calculation, f"learning rate {lr:g} -> {new_lr:g}, restarting from scratch")
        return ProcessHandlerReport(True)


def _reported_step(calculation) -> int | None:
    try:
        step = calculation.outputs.metrics.get("step")
    except AttributeError:
        return None
    return int(step) if step is not None else None


def _default_lr() -> float:
    from slem.train.config import TrainingSection

    return TrainingSection().lr
