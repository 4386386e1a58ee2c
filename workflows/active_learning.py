"""``ActiveLearningWorkChain``: DFT only where a committee of models is unsure.

Each round trains a committee (``n_models`` ``SlemTrainWorkChain``s that differ only in their seed; from the
second round on, each member fine-tunes its predecessor), ranks the remaining candidate structures by the
members' spread (``slem.committee``; ``committee.rank_by``: on their H blocks by default, or on the bands
around the Fermi level, ``fermi_band_sigma_meV``), and, unless it stops, runs the SCF and projection
(``OperatorWorkChain``) on the ``select`` most uncertain ones and appends them to the training split
(``extend_dataset``). It stops after ``max_rounds`` such rounds, when no candidate is left, or when the
largest spread falls below ``target_sigma_H_meV``. Every round is a provenance step: its committee's report
is an output (``rounds.round_<n>``), and the workflow's ``history`` extra lists what each round picked.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain, if_, while_
from aiida_slem.calcjobs.committee import SlemCommitteeCalculation
from aiida_slem.calcjobs.train import check_basis

from aiida_slem.data.basis import BasisData
from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.merge import extend_dataset
from aiida_slem.data.model import SlemModelData

from .committee import member_inputs
from .composition import settings_structure
from .dimensionality import is_sheet
from .operator import OperatorWorkChain
from .protocols import check_override_keys, union_pseudos
from .train import SlemTrainWorkChain

LOOP_INPUTS = {"n_models": orm.Int, "select": orm.Int, "max_rounds": orm.Int, "target_sigma_H_meV": orm.Float}


def validate_inputs(inputs: dict, _) -> str | None:
    if inputs["n_models"].value < 2:
        return f"n_models must be at least 2 (a committee), got {inputs['n_models'].value}"
    if inputs["select"].value < 1 or inputs["max_rounds"].value < 0:
        return "select must be at least 1 and max_rounds at least 0"
    if not inputs.get("candidates"):
        return "give at least one candidate structure in 'candidates'"
    training = inputs["train"]["train"]["config"].get_dict().get("training", {})
    if "init_model" in training:
        return (
            "train.train.config sets training.init_model; the committee fine-tunes each member from the "
            "previous round's by itself: remove it"
        )
    dataset = inputs["dataset"]
    error = check_basis(inputs["basis"], dataset)
    if error:
        return error
    elements = {el for s in inputs["candidates"].values() for el in s.get_symbols_set()}
    unknown = sorted(elements - set(dataset.base.attributes.get("elements", [])))
    if unknown:
        return (
            f"candidates hold element(s) {unknown} that the dataset lacks; the committee could not rank them"
        )
    return None


class ActiveLearningWorkChain(WorkChain):
    """Grow a dataset with DFT frames of the candidates a committee is least sure about."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=DatasetData, help="The labelled frames to start from.")
        spec.input("basis", valid_type=BasisData, help="The basis of its frames; new frames use it too.")
        spec.input_namespace(
            "candidates",
            valid_type=orm.StructureData,
            dynamic=True,
            help="Unlabelled structures (MD snapshots, strained or perturbed cells), by label.",
        )
        spec.input("n_models", valid_type=orm.Int, default=lambda: orm.Int(4))
        spec.input("select", valid_type=orm.Int, default=lambda: orm.Int(2), help="New DFT frames per round.")
        spec.input(
            "max_rounds", valid_type=orm.Int, default=lambda: orm.Int(3), help="Rounds that add frames."
        )
        spec.input(
            "target_sigma_H_meV",
            valid_type=orm.Float,
            required=False,
            help="Stop once the largest H spread over the remaining candidates is below this.",
        )
        spec.expose_inputs(
            SlemTrainWorkChain,
            namespace="train",
            exclude=("train.dataset", "train.parent_model", "train.basis"),
        )
        spec.expose_inputs(OperatorWorkChain, namespace="operator", exclude=("structure", "project.basis"))
        spec.expose_inputs(
            SlemCommitteeCalculation,
            namespace="committee",
            exclude=("models", "candidates", "structures", "select"),
        )
        spec.inputs.validator = validate_inputs
        spec.outline(
            cls.setup,
            while_(cls.keep_going)(
                cls.train_committee,
                cls.inspect_committee,
                if_(cls.has_candidates)(
                    cls.rank_candidates,
                    cls.inspect_ranking,
                    if_(cls.labelling)(cls.label_selected, cls.extend),
                ).else_(cls.stop),
            ),
            cls.results,
        )
        spec.output(
            "dataset", valid_type=DatasetData, help="The final dataset: the start plus the picked frames."
        )
        spec.output_namespace("models", valid_type=SlemModelData, dynamic=True, help="The last committee.")
        spec.output_namespace(
            "rounds", valid_type=orm.Dict, dynamic=True, help="Each round's committee report."
        )
        spec.exit_code(401, "ERROR_MEMBER_FAILED", message="round {round}: member {seed} failed: {status}")
        spec.exit_code(
            402, "ERROR_COMMITTEE_FAILED", message="round {round}: slem.committee failed: {status}"
        )
        spec.exit_code(
            403, "ERROR_LABEL_FAILED", message="round {round}: no picked frame got its DFT operators"
        )

    @classmethod
    def get_builder_from_protocol(
        cls, codes: dict, dataset, basis, candidates: dict, protocol=None, overrides=None, options=None,
        electronic_type=None, **_,
    ):
        """Builder whose members train with ``train.yaml`` and whose new frames follow ``operator.yaml`` under
        ``protocol``. ``codes``: ``{"pw": ..., "pp": ..., "slem": ...}``; ``dataset`` and ``basis``: e.g. a
        pipeline's dataset and its basis; ``candidates``: ``{label: StructureData}``. ``overrides``: ``train``
        and ``operator`` (merged into those protocols), ``n_models``, ``select``, ``max_rounds``,
        ``target_sigma_H_meV``, and ``rank_by`` (the committee's ranking spread, ``committee.rank_by``)."""
        overrides = dict(overrides or {})
        check_override_keys(overrides, ("train", "operator", "rank_by", *LOOP_INPUTS), cls.__name__)
        codes = {name: orm.load_code(c) if isinstance(c, (str, int)) else c for name, c in codes.items()}
        train = SlemTrainWorkChain.get_builder_from_protocol(
            codes["slem"], protocol=protocol, overrides=overrides.get("train"), options=options,
            sheet=any(is_sheet(structure) for structure in candidates.values()),
        )
        family = (overrides.get("operator") or {}).get("pseudo_family")
        pseudos = union_pseudos(candidates.values(), family)
        # the SCF settings every candidate shares (a metal's nbnd) are made for the one with the most
        # electrons, as in the pipeline
        operator = OperatorWorkChain.get_builder_from_protocol(
            codes["pw"], codes["pp"], codes["slem"], settings_structure(candidates, pseudos),
            protocol=protocol, overrides=overrides.get("operator"), options=options,
            electronic_type=electronic_type,
        )
        operator.scf.pw.pseudos = pseudos  # the union: each SCF takes its own kinds' (operator.py)
        operator_inputs = operator._inputs(prune=True)
        operator_inputs.pop("structure")
        builder = cls.get_builder()
        builder.dataset = dataset
        builder.basis = basis
        builder.candidates = dict(candidates)
        builder.train = train._inputs(prune=True)
        builder.operator = operator_inputs
        builder.committee.code = codes["slem"]
        builder.committee.metadata.options = dict(train.train.metadata.options)
        if "rank_by" in overrides:
            builder.committee.rank_by = orm.Str(overrides["rank_by"])
        for key, kind in LOOP_INPUTS.items():
            if key in overrides:
                builder[key] = kind(overrides[key])
        return builder

    def setup(self):
        self.ctx.round = 0
        self.ctx.done = False
        self.ctx.dataset = self.inputs.dataset
        self.ctx.remaining = sorted(self.inputs.candidates)
        self.ctx.members = {}
        self.ctx.history = []

    def keep_going(self) -> bool:
        return not self.ctx.done

    def train_committee(self):
        inputs = AttributeDict(self.exposed_inputs(SlemTrainWorkChain, "train"))
        with_basis = (inputs.train.config.get_dict().get("model") or {}).get("overlap") == "basis"
        futures = {}
        for seed in range(self.inputs.n_models.value):
            train = {"dataset": self.ctx.dataset}
            if with_basis:
                train["basis"] = self.inputs.basis
            if seed in self.ctx.members:  # fine-tune the previous round's member of the same seed
                train["parent_model"] = self.ctx.members[seed]
            member = member_inputs(inputs, seed, f"round_{self.ctx.round}_member_{seed}", **train)
            futures[f"member_{seed}"] = self.submit(SlemTrainWorkChain, **member)
        return ToContext(**futures)

    def inspect_committee(self):
        for seed in range(self.inputs.n_models.value):
            node = self.ctx[f"member_{seed}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MEMBER_FAILED.format(
                    round=self.ctx.round, seed=seed, status=node.exit_status
                )
            self.ctx.members[seed] = node.outputs.model
        return None

    def has_candidates(self) -> bool:
        return bool(self.ctx.remaining)

    def stop(self):
        self.report(f"round {self.ctx.round}: every candidate is in the dataset; stopping")
        self.ctx.done = True

    def rank_candidates(self):
        inputs = AttributeDict(self.exposed_inputs(SlemCommitteeCalculation, "committee"))
        inputs.models = {f"member_{seed}": model for seed, model in self.ctx.members.items()}
        inputs.structures = {label: self.inputs.candidates[label] for label in self.ctx.remaining}
        inputs.select = orm.Int(self.inputs.select.value)
        inputs.metadata = {
            **inputs.get("metadata", {}),
            "call_link_label": f"round_{self.ctx.round}_committee",
        }
        return ToContext(committee=self.submit(SlemCommitteeCalculation, **inputs))

    def inspect_ranking(self):
        node = self.ctx.committee
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_COMMITTEE_FAILED.format(
                round=self.ctx.round, status=node.exit_status
            )
        report = node.outputs.report
        self.out(f"rounds.round_{self.ctx.round}", report)
        spreads = [row["sigma_H_meV"] for row in report["frames"]]
        target = self.inputs.get("target_sigma_H_meV")
        stop = self.ctx.round >= self.inputs.max_rounds.value or (
            target is not None and max(spreads) < target.value
        )
        self.ctx.selected = [] if stop else list(report["most_uncertain"])
        self.ctx.history.append(
            {
                "round": self.ctx.round,
                "candidates": len(spreads),
                "max_sigma_H_meV": max(spreads),
                "mean_sigma_H_meV": sum(spreads) / len(spreads),
                "ranked_by": report.get("ranked_by", "sigma_H_meV"),
                "picked": self.ctx.selected,
            }
        )
        self.node.base.extras.set("history", self.ctx.history)
        self.report(
            f"round {self.ctx.round}: largest H spread {max(spreads):.3f} meV over {len(spreads)} "
            "candidates; "
            + (f"computing {self.ctx.selected}" if self.ctx.selected else "stopping")
        )
        self.ctx.done = stop
        return None

    def labelling(self) -> bool:
        return bool(self.ctx.selected)

    def label_selected(self):
        futures = {}
        for label in self.ctx.selected:
            inputs = AttributeDict(self.exposed_inputs(OperatorWorkChain, "operator"))
            inputs.structure = self.inputs.candidates[label]
            inputs.project["basis"] = self.inputs.basis
            inputs.metadata = {"call_link_label": f"round_{self.ctx.round}_operator_{label}"}
            futures[f"operator_{label}"] = self.submit(OperatorWorkChain, **inputs)
        return ToContext(**futures)

    def extend(self):
        frames = {}
        for label in self.ctx.selected:
            node = self.ctx[f"operator_{label}"]
            if node.is_finished_ok:
                frames[label] = node.outputs.operator
            else:
                self.report(f"round {self.ctx.round}: {label} failed ({node.exit_status}); left out")
        if not frames:
            return self.exit_codes.ERROR_LABEL_FAILED.format(round=self.ctx.round)
        self.ctx.dataset = extend_dataset(
            self.ctx.dataset,
            self.inputs.basis,
            metadata={"call_link_label": f"round_{self.ctx.round}_extend"},
            **frames,
        )
        self.ctx.remaining = [label for label in self.ctx.remaining if label not in self.ctx.selected]
        self.ctx.round += 1
        return None

    def results(self):
        self.out("dataset", self.ctx.dataset)
        for seed, model in self.ctx.members.items():
            self.out(f"models.member_{seed}", model)
