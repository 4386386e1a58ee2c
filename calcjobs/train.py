"""``slem.train``: train a SLEM model with ``slem train`` on the compute resource, on CPU or GPUs.

The dataset travels as a node (its HDF5 file is copied into the working directory), never as a path on
the submitting machine, so the provenance graph always records what the model was trained on.
"""

from __future__ import annotations

import copy
import json

from aiida import orm

from aiida_slem.data.basis import BasisData
from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData

from .base import SlemCommandCalculation
from .checks import excluded
from .gpu import (
    WATCHDOG_MARKER,
    calcjob_gpu_request,
    check_gpu_inputs,
    define_gpu_inputs,
    walltime_stop_seconds,
    watchdog_text,
)

RUN_CONFIG = "slem_train.json"
OUTPUT_DIR = "output"
DATASET_FILE = "dataset.h5"
VALIDATION_FILE = "validation.h5"
PARENT_MODEL_FILE = "parent_model.pt"
BASIS_FILE = "basis.h5"
STDOUT = "slem-train.out"
STDERR = "slem-train.err"
RETRIEVED_OUTPUTS = ("status.json", "summary.json", "metrics.jsonl", "learning_curve.png", "config.json")
MODEL_FILE = "model.pt"


def run_config(
    config: dict, with_validation: bool, init_model: bool = False, with_basis: bool = False
) -> dict:
    """The config file ``slem train`` reads: the user's sections plus the paths this CalcJob controls."""
    raw = copy.deepcopy(config)
    raw["dataset"] = {"path": DATASET_FILE}
    if with_validation:
        raw["dataset"]["validation_path"] = VALIDATION_FILE
    if with_basis:
        raw["dataset"]["basis_path"] = BASIS_FILE
    raw["output_dir"] = OUTPUT_DIR
    if init_model:
        raw.setdefault("training", {})["init_model"] = PARENT_MODEL_FILE
    return raw


def train_split_size(dataset: DatasetData) -> int:
    """Frames the trainer will use for training: a file without a split trains on every frame."""
    split = dataset.base.attributes.get("split", {}) or {}
    if not split:
        return int(dataset.base.attributes.get("n_frames", 0))
    return len(split.get("train", []))


def check_config(
    config: dict, validation: bool, with_basis: bool = False, init_model: bool = False
) -> str | None:
    from slem.train.config import ConfigError, validate_config

    for key, why in (
        (
            "dataset",
            "the training frames come from the `dataset` (and `validation_dataset`) input "
            "nodes, so that the provenance graph records them; remove config.dataset",
        ),
        ("output_dir", "the CalcJob chooses the output folder; remove config.output_dir"),
    ):
        if key in config:
            return f"config.{key} must not be given: {why}"
    if (config.get("model") or {}).get("overlap") == "basis" and not (with_basis or init_model):
        return (
            "config.model.overlap: basis computes S from the basis: pass the `basis` input (the BasisData "
            "the dataset was projected onto, e.g. the DatasetWorkChain's 'basis' output)"
        )
    try:
        validate_config(run_config(config, validation, init_model, with_basis))
    except ConfigError as exc:
        return str(exc)
    return None


def data_summary(dataset: DatasetData, role: str, needs_train: bool):
    """What ``slem train`` would read from the dataset's file, from the node's attributes."""
    from slem.train.data_summary import DataSummary

    attributes = dataset.base.attributes
    return DataSummary(
        where=f"{role} <{dataset.pk or 'unstored'}>",
        operators=attributes.get("operators", []),
        basis=attributes.get("basis", {}),
        elements=attributes.get("elements", []),
        n_train=train_split_size(dataset) if needs_train else None,
    )


def check_datasets(config: dict, sources: list) -> str | None:
    """The config against the datasets' summaries, by the rules ``slem train`` applies to the files."""
    from slem.train.data_summary import data_problems

    problems = data_problems(config.get("operators", ["H", "S"]), config.get("model") or {}, sources)
    return "the training config does not fit its data:\n  - " + "\n  - ".join(problems) if problems else None


def check_basis(basis: BasisData, dataset: DatasetData) -> str | None:
    """The basis input must be the one the dataset's frames were projected onto."""
    recorded = dataset.base.attributes.get("basis_uuid")
    if recorded and recorded != basis.uuid:
        return (
            f"basis <{basis.pk or 'unstored'}> is not the basis the dataset <{dataset.pk or 'unstored'}> was "
            f"projected onto (<{recorded}>); pass that one (the dataset workchain's 'basis' output)"
        )
    shells = {el: basis.shells.get(el) for el in dataset.base.attributes.get("basis", {})}
    if shells != dataset.base.attributes.get("basis", {}):
        return (f"basis <{basis.pk or 'unstored'}> has shells {shells} but the dataset holds "
                f"{dataset.base.attributes.get('basis')}; pass the basis the frames were projected onto")
    return None


def check_parent_model(model: SlemModelData, dataset: DatasetData) -> str | None:
    model_basis = model.base.attributes.get("basis", {})
    dataset_basis = dataset.base.attributes.get("basis", {})
    differing = {
        el: (model_basis.get(el), shells)
        for el, shells in dataset_basis.items()
        if model_basis.get(el) != shells
    }
    if differing:
        return (
            f"the dataset <{dataset.pk or 'unstored'}> does not match the basis of parent_model "
            f"<{model.pk or 'unstored'}> (element: (model, dataset)) {differing}; fine-tuning needs frames "
            "projected onto the model's basis"
        )
    return None


def validate_inputs(inputs: dict, ctx) -> str | None:
    """Everything that can be checked before the job reaches the cluster."""
    config = inputs["config"].get_dict()
    if excluded(ctx, "dataset"):
        # exposed in a WorkChain that makes the dataset (SlemPipelineWorkChain): the config is checked now,
        # as that run will use it, with the validation split and the basis the pipeline passes along
        error = check_config(config, True, True, "parent_model" in inputs)
        return error or check_resources(inputs)
    validation = inputs.get("validation_dataset")
    error = check_config(config, validation is not None, "basis" in inputs, "parent_model" in inputs)
    if error:
        return error
    if "basis" in inputs:
        error = check_basis(inputs["basis"], inputs["dataset"])
        if error:
            return error
    sources = [data_summary(inputs["dataset"], "dataset", needs_train=True)]
    if validation is not None:
        sources.append(data_summary(validation, "validation_dataset", needs_train=False))
    error = check_datasets(config, sources)
    if error:
        return error
    if "parent_model" in inputs:
        error = check_parent_model(inputs["parent_model"], inputs["dataset"])
        if error:
            return error
    return check_resources(inputs)


def check_resources(inputs: dict) -> str | None:
    code = inputs.get("code")
    computer = inputs.get("metadata", {}).get("computer") or getattr(code, "computer", None)
    if computer is None:
        return None  # the CalcJob itself reports the missing computer
    parent = inputs.get("parent_folder")
    if parent is not None and parent.computer.uuid != computer.uuid:
        return (
            f"parent_folder is on computer '{parent.computer.label}' but this job runs on "
            f"'{computer.label}'; checkpoints can only be resumed on the same computer"
        )
    return check_gpu_inputs(inputs, computer.scheduler_type)


class SlemTrainCalculation(SlemCommandCalculation):
    """Run ``slem train`` on a ``DatasetData``; outputs a ``SlemModelData``, metrics and learning curves."""

    _PARSER = "slem.train"
    _STDOUT = STDOUT
    _STDERR = STDERR

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=DatasetData, help="Training frames (and split); copied to the job.")
        spec.input(
            "validation_dataset",
            valid_type=DatasetData,
            required=False,
            help="Validation frames; replaces the validation split of `dataset`.",
        )
        spec.input(
            "config",
            valid_type=orm.Dict,
            help="The slem training config without `dataset` and `output_dir`: sections operators, model, "
            "training. Validated with slem.train.config.validate_config at submission.",
        )
        spec.input(
            "parent_folder",
            valid_type=orm.RemoteData,
            required=False,
            help="remote_folder of an earlier slem.train job: resume from its checkpoints/latest.pt.",
        )
        spec.input(
            "basis",
            valid_type=BasisData,
            required=False,
            help="The basis the dataset was projected onto; copied to the job for model.overlap: basis "
            "(S from its exact two-centre integrals instead of a learned overlap).",
        )
        spec.input(
            "parent_model",
            valid_type=SlemModelData,
            required=False,
            help="Fine-tune: start from the weights of this model (its basis must match the dataset's).",
        )
        define_gpu_inputs(
            spec, "GPUs to request (one node). 0: CPU. >1: data-parallel with torchrun.", gpus_per_task=True
        )
        spec.input(
            "metadata.options.walltime_margin_seconds",
            valid_type=int,
            required=False,
            help="Stop training this long before max_wallclock_seconds to write the checkpoint "
            "(default: 10% of the walltime, at most 300 s; 0 on the direct scheduler).",
        )
        spec.inputs.validator = validate_inputs

        spec.output(
            "model", valid_type=SlemModelData, required=False, help="The trained model (best weights)."
        )
        spec.output(
            "metrics",
            valid_type=orm.Dict,
            required=False,
            help="State, steps, n_params, best validation and test metrics.",
        )
        spec.output(
            "learning_curves",
            valid_type=orm.ArrayData,
            required=False,
            help="Per-step train and validation values, arrays '<kind>_<name>' with '<kind>_step'.",
        )
        spec.output(
            "learning_curve_plot", valid_type=orm.SinglefileData, required=False, help="learning_curve.png"
        )
        spec.default_output_node = "metrics"

        spec.exit_code(
            301,
            "ERROR_NO_STATUS",
            message="'slem train' ended without writing status.json (crashed or killed): {message}",
        )
        spec.exit_code(302, "ERROR_MISSING_OUTPUT", message="'slem train' finished but {message} is missing.")
        spec.exit_code(303, "ERROR_INVALID_MODEL", message="The model file is not valid: {message}")
        spec.exit_code(310, "ERROR_CONFIG", message="'slem train' rejected the configuration: {message}")
        spec.exit_code(
            400,
            "ERROR_OUT_OF_WALLTIME",
            message="Training stopped at the walltime after step {step}; resume from remote_folder.",
        )
        spec.exit_code(
            410, "ERROR_OUT_OF_MEMORY", message="Training ran out of (CPU or GPU) memory: {message}"
        )
        spec.exit_code(420, "ERROR_NAN_LOSS", message="The training loss became NaN or infinite: {message}")

    def prepare_for_submission(self, folder):
        inputs = self.inputs
        config = inputs.config.get_dict()
        with_validation = "validation_dataset" in inputs
        fine_tune = "parent_model" in inputs
        with_basis = "basis" in inputs
        with folder.open(RUN_CONFIG, "w") as handle:
            json.dump(run_config(config, with_validation, fine_tune, with_basis), handle, indent=2)
        folder.get_subfolder(OUTPUT_DIR, create=True)

        local_copy_list = [(inputs.dataset.uuid, inputs.dataset.filename, DATASET_FILE)]
        if with_validation:
            local_copy_list.append(
                (inputs.validation_dataset.uuid, inputs.validation_dataset.filename, VALIDATION_FILE)
            )
        if with_basis:
            local_copy_list.append((inputs.basis.uuid, inputs.basis.filename, BASIS_FILE))
        if fine_tune:
            local_copy_list.append(
                (inputs.parent_model.uuid, inputs.parent_model.filename, PARENT_MODEL_FILE)
            )

        remote_copy_list = []
        arguments = ["train", RUN_CONFIG, "--no-progress"]
        if "parent_folder" in inputs:
            # checkpoints and the metrics log only: a stale status.json or model.pt must never be parsed
            parent = inputs.parent_folder
            root = f"{parent.get_remote_path()}/{OUTPUT_DIR}"
            remote_copy_list += [
                (parent.computer.uuid, f"{root}/checkpoints", f"{OUTPUT_DIR}/checkpoints"),
                (parent.computer.uuid, f"{root}/metrics.jsonl", f"{OUTPUT_DIR}/metrics.jsonl"),
            ]
            arguments += ["--resume", "auto"]

        gpus = inputs.gpus.value
        arguments += ["--device", "cuda" if gpus > 0 else "cpu"]
        if gpus > 1:
            arguments += ["--ddp", "--nproc", str(gpus)]

        prepend, append = self._scheduler_texts()
        return self.command_calcinfo(
            arguments,
            local_copy_list,
            retrieve=[WATCHDOG_MARKER, *(f"{OUTPUT_DIR}/{name}" for name in RETRIEVED_OUTPUTS)],
            retrieve_temporary=[f"{OUTPUT_DIR}/{MODEL_FILE}"],
            remote_copy_list=remote_copy_list,
            prepend_text=prepend,
            append_text=append,
            ranks=max(gpus, 1),
        )

    def _scheduler_texts(self) -> tuple[str, str]:
        """GPU directives (merged into custom_scheduler_commands) and the prepend/append shell text."""
        computer = self.node.computer
        options = self.inputs.metadata.options
        request = calcjob_gpu_request(self)
        self.add_scheduler_commands(request.scheduler_commands)
        prepend, append = [request.prepend_text] if request.prepend_text else [], []
        stop_after = walltime_stop_seconds(
            computer.scheduler_type,
            options.get("max_wallclock_seconds"),
            options.get("walltime_margin_seconds"),
        )
        if stop_after is not None:
            watchdog_prepend, watchdog_append = watchdog_text(stop_after)
            prepend.append(watchdog_prepend)
            append.append(watchdog_append)
        return "\n".join(prepend), "\n".join(append)
