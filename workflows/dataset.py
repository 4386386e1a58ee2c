"""``DatasetWorkChain``: snapshots -> one OperatorWorkChain each (bounded concurrency) -> quality gate ->
one ``DatasetData`` with its train/validation/test split, linked to every ``OperatorData`` it holds.

Bad input is refused by the input validators, and the dataset is merged only after every frame has
been checked, so a failed run never leaves a partial ``DatasetData`` behind.
"""

from __future__ import annotations

import random

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, while_
from aiida_slem.calcjobs.basis import SlemBasisCalculation
from aiida_slem.calcjobs.checks import (
    check_norm_conserving,
    check_periodic_structure,
    check_pseudos_cover,
    excluded,
)

from aiida_slem.data.basis import BasisData
from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.merge import merge_operator_frames
from aiida_slem.data.operator import OperatorData

from .operator import OperatorWorkChain
from .protocols import SlemProtocolMixin, calcjob_options
from .splits import larger_cell_kpoints

SNAPSHOT_KINDS = ("train", "held_out")


def snapshots_problem(snapshots: dict, pseudos: dict) -> str | None:
    if not snapshots.get("train"):
        return "give at least one snapshot in 'snapshots.train'"
    structures = [
        (f"{kind}.{label}", structure)
        for kind in SNAPSHOT_KINDS
        for label, structure in sorted(snapshots.get(kind, {}).items())
    ]
    for name, structure in structures:
        error = check_periodic_structure(structure) or check_pseudos_cover(structure, pseudos)
        if error:
            return f"snapshot {name}: {error}"
    # each UPF is parsed once, however many snapshots use it
    error = check_norm_conserving({kind: pseudos[kind] for _, s in structures for kind in s.get_kind_names()})
    if error:
        return error
    labels = [label for kind in SNAPSHOT_KINDS for label in snapshots.get(kind, {})]
    if len(set(labels)) != len(labels):
        return "a snapshot label is used in both 'train' and 'held_out'; keep labels unique"
    return None


def validate_inputs(inputs: dict, ctx) -> str | None:
    pseudos = dict(inputs["operator"]["scf"]["pw"]["pseudos"])
    if excluded(ctx, "snapshots"):
        # exposed in SlemPipelineWorkChain, whose MD makes the snapshots: check every pseudopotential given
        error = check_norm_conserving(pseudos)
        if error:
            return error
    else:
        error = snapshots_problem(inputs.get("snapshots", {}), pseudos)
        if error:
            return error
    fraction = inputs["validation_fraction"].value
    if not 0.0 <= fraction < 1.0:
        return f"validation_fraction must lie in [0, 1), got {fraction}"
    if inputs["sum_rule_tolerance"].value < 0:
        return "sum_rule_tolerance is a number of electrons and cannot be negative"
    if inputs["max_concurrent"].value < 1:
        return "max_concurrent must be at least 1"
    supercells = inputs.get("supercell_frames")
    bad = {
        label: factors
        for label, factors in (supercells.get_dict() if supercells is not None else {}).items()
        if not (isinstance(factors, list) and len(factors) == 3)
        or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in factors)
    }
    if bad:
        return f"supercell_frames maps a snapshot to three positive repetitions, e.g. [2, 2, 2]; got {bad}"
    return None


def rejection_reason(attributes: dict, tolerance: float) -> str | None:
    """Why an OperatorData (its attributes) must not enter the dataset, or ``None`` to accept it."""
    if attributes.get("scf_converged") is False:
        return "SCF not converged"
    if "tr_DS" not in attributes or "n_electrons" not in attributes:
        return "the projection summary lacks tr_DS or n_electrons"
    deviation = abs(attributes["tr_DS"] - attributes["n_electrons"])
    if deviation > tolerance:
        return f"|sum Tr(DS) - N_el| = {deviation:.3g} > {tolerance}"
    return None


def split_frames(train_pool: list[str], held_out: list[str], validation_fraction: float, seed: int) -> dict:
    """Validation frames drawn (seeded) from the training pool; held-out snapshots are the test split."""
    pool = sorted(train_pool)
    random.Random(seed).shuffle(pool)
    n_validation = round(validation_fraction * len(pool))
    if validation_fraction > 0 and len(pool) >= 2:
        n_validation = max(1, min(n_validation, len(pool) - 1))
    return {
        "train": sorted(pool[n_validation:]),
        "validation": sorted(pool[:n_validation]),
        "test": sorted(held_out),
    }


class DatasetWorkChain(SlemProtocolMixin, WorkChain):
    """Build a DatasetData from MD snapshots (e.g. ``MdSamplingWorkChain.outputs.snapshots``)."""

    _protocol_file = "dataset.yaml"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace(
            "snapshots.train",
            valid_type=orm.StructureData,
            dynamic=True,
            help="Training-pool structures; a seeded fraction becomes the validation split.",
        )
        spec.input_namespace(
            "snapshots.held_out",
            valid_type=orm.StructureData,
            dynamic=True,
            required=False,
            help="Held-out structures (other temperature or trajectory): the test split.",
        )
        spec.expose_inputs(
            SlemBasisCalculation,
            namespace="basis",
            exclude=("pseudos",),
            namespace_options={"help": "The 'slem basis' job, run on the SCF's pseudopotentials."},
        )
        spec.expose_inputs(OperatorWorkChain, namespace="operator", exclude=("structure", "project.basis"))
        spec.input(
            "max_concurrent",
            valid_type=orm.Int,
            default=lambda: orm.Int(4),
            help="OperatorWorkChains running at the same time.",
        )
        spec.input(
            "supercell_frames",
            valid_type=orm.Dict,
            required=False,
            help="{snapshot label: [r1, r2, r3]}: snapshots that are supercells of the others' cells (a "
            "size test); their SCFs sample the same Brillouin-zone points (splits.larger_cell_kpoints).",
        )
        spec.input("validation_fraction", valid_type=orm.Float, default=lambda: orm.Float(0.25))
        spec.input("seed", valid_type=orm.Int, default=lambda: orm.Int(0))
        spec.input(
            "sum_rule_tolerance",
            valid_type=orm.Float,
            default=lambda: orm.Float(1e-3),
            help="Frames with |sum Tr(DS) - N_electrons| above this (electrons) are rejected.",
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            cls.run_basis,
            cls.inspect_basis,
            while_(cls.has_pending)(cls.submit_batch, cls.inspect_batch),
            cls.gate,
            cls.merge,
            cls.results,
        )
        spec.output("dataset", valid_type=DatasetData)
        spec.output("basis", valid_type=BasisData)
        spec.output_namespace("operators", valid_type=OperatorData, dynamic=True)
        spec.exit_code(
            401, "ERROR_BASIS_FAILED", message="slem basis failed with exit status {status}: {message}"
        )
        spec.exit_code(
            402, "ERROR_NO_TRAINING_FRAMES", message="No training-pool frame passed the quality gate."
        )

    @classmethod
    def get_builder_from_protocol(
        cls,
        pw_code,
        pp_code,
        slem_code,
        snapshots,
        protocol=None,
        overrides=None,
        options=None,
        electronic_type=None,
        **_,
    ):
        """``snapshots``: ``{"train": {label: StructureData}, "held_out": {...}}`` (MdSampling output).

        ``overrides["operator"]`` goes to ``OperatorWorkChain.get_builder_from_protocol`` (same protocol),
        and so does ``electronic_type`` ('insulator' or 'metal')."""
        overrides = dict(overrides or {})
        operator_overrides = overrides.pop("operator", None)
        inputs = cls.get_protocol_inputs(protocol, overrides)
        train = dict(snapshots["train"])
        reference = next(iter(train.values()))
        operator = OperatorWorkChain.get_builder_from_protocol(
            pw_code,
            pp_code,
            slem_code,
            reference,
            protocol=protocol,
            overrides=operator_overrides,
            options=options,
            electronic_type=electronic_type,
        )
        builder = cls.get_builder()
        builder.snapshots.train = train
        if snapshots.get("held_out"):
            builder.snapshots.held_out = dict(snapshots["held_out"])
        builder.basis.code = operator.project.code
        builder.basis.parameters = orm.Dict(inputs["basis_parameters"])
        builder.basis.metadata.options = calcjob_options(inputs["options"], options)
        operator_inputs = operator._inputs(prune=True)
        operator_inputs.pop("structure")
        operator_inputs["project"].pop("basis", None)
        builder.operator = operator_inputs
        for key in ("max_concurrent", "seed"):
            builder[key] = orm.Int(inputs[key])
        for key in ("validation_fraction", "sum_rule_tolerance"):
            builder[key] = orm.Float(inputs[key])
        return builder

    def setup(self):
        self.ctx.pending = [
            (kind, label) for kind in SNAPSHOT_KINDS for label in sorted(self.inputs.snapshots.get(kind, {}))
        ]
        self.ctx.finished = {}

    def _pseudos(self) -> dict:
        kinds = {
            k
            for kind in SNAPSHOT_KINDS
            for s in self.inputs.snapshots.get(kind, {}).values()
            for k in s.get_kind_names()
        }
        by_element = {}
        for kind in sorted(kinds):
            pseudo = self.inputs.operator.scf.pw.pseudos[kind]
            by_element[pseudo.element] = pseudo
        return by_element

    def run_basis(self):
        inputs = AttributeDict(self.exposed_inputs(SlemBasisCalculation, namespace="basis"))
        inputs.pseudos = self._pseudos()
        inputs.setdefault("metadata", {})["call_link_label"] = "basis"
        return ToContext(basis=self.submit(SlemBasisCalculation, **inputs))

    def inspect_basis(self):
        calc = self.ctx.basis
        if not calc.is_finished_ok:
            return self.exit_codes.ERROR_BASIS_FAILED.format(
                status=calc.exit_status, message=calc.exit_message
            )
        self.ctx.basis_data = calc.outputs.basis
        return None

    def has_pending(self) -> bool:
        return bool(self.ctx.pending)

    def submit_batch(self):
        batch, self.ctx.pending = (
            self.ctx.pending[: self.inputs.max_concurrent.value],
            self.ctx.pending[self.inputs.max_concurrent.value :],
        )
        futures = {}
        for kind, label in batch:
            inputs = AttributeDict(self.exposed_inputs(OperatorWorkChain, namespace="operator"))
            inputs.structure = self.inputs.snapshots[kind][label]
            inputs.project["basis"] = self.ctx.basis_data
            factors = self.inputs.supercell_frames.get(label) if "supercell_frames" in self.inputs else None
            if factors:
                inputs.scf = AttributeDict(inputs.scf)
                inputs.scf.kpoints = larger_cell_kpoints(inputs.scf, inputs.structure, factors)
                inputs.scf.pop("kpoints_distance", None)
            inputs.metadata = {"call_link_label": f"operator_{kind}_{label}"}
            key = f"{kind}__{label}"  # the frame is named by its label; the prefix keeps the split
            futures[key] = self.submit(OperatorWorkChain, **inputs)
        self.report(
            f"submitted {len(batch)} OperatorWorkChain(s); {len(self.ctx.pending)} snapshot(s) waiting"
        )
        self.ctx.batch = list(futures)
        return ToContext(**futures)

    def inspect_batch(self):
        for key in self.ctx.batch:
            self.ctx.finished[key] = self.ctx[key].pk

    def gate(self):
        """Accept a frame only if its OperatorWorkChain succeeded, its SCF converged, the sum rule holds."""
        tolerance = self.inputs.sum_rule_tolerance.value
        accepted, rejected = {}, {}
        for key, pk in sorted(self.ctx.finished.items()):
            node = orm.load_node(pk)
            reason = None
            if not node.is_finished_ok:
                reason = f"OperatorWorkChain<{pk}> exit {node.exit_status}: {node.exit_message}"
            else:
                reason = rejection_reason(node.outputs.operator.base.attributes.all, tolerance)
            if reason:
                rejected[key] = reason
                self.report(f"rejected frame {key}: {reason}")
            else:
                accepted[key] = node.outputs.operator
        self.ctx.accepted = accepted
        # an extra of this WorkChain (a WorkChain may not create Data nodes), set even if all are rejected
        report = {"accepted": sorted(accepted), "rejected": rejected, "sum_rule_tolerance": tolerance}
        self.node.base.extras.set("quality_report", report)
        if not any(key.startswith("train__") for key in accepted):
            return self.exit_codes.ERROR_NO_TRAINING_FRAMES
        return None

    def merge(self):
        labels = {key: key.split("__", 1)[1] for key in self.ctx.accepted}
        split = split_frames(
            [labels[k] for k in labels if k.startswith("train__")],
            [labels[k] for k in labels if k.startswith("held_out__")],
            self.inputs.validation_fraction.value,
            self.inputs.seed.value,
        )
        frames = {labels[key]: operator for key, operator in self.ctx.accepted.items()}
        self.ctx.labels = labels
        self.ctx.dataset = merge_operator_frames(
            split=orm.Dict(split), basis=self.ctx.basis_data, metadata={"call_link_label": "merge"}, **frames
        )
        self.report(
            f"dataset of {len(frames)} frames: "
            + ", ".join(f"{name} {len(members)}" for name, members in split.items())
        )

    def results(self):
        self.out("dataset", self.ctx.dataset)
        self.out("basis", self.ctx.basis_data)
        for key, operator in self.ctx.accepted.items():
            self.out(f"operators.{self.ctx.labels[key]}", operator)
