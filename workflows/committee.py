"""``SlemCommitteeWorkChain``: a committee of SLEM models (one training config, ``n_models`` seeds) trained as
parallel ``SlemTrainWorkChain``s, then ``slem.committee`` on candidate frames.

The report says how much the members disagree on each candidate (H blocks and bands), how well that spread
ranks the true error where the candidates carry reference H, and which candidates to compute with DFT next.
Every member is its own provenance branch; the report links to all of them through the committee job.
"""

from __future__ import annotations

import copy

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext, WorkChain
from aiida_slem.calcjobs.committee import SlemCommitteeCalculation

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData

from .train import SlemTrainWorkChain


def member_inputs(inputs: AttributeDict, seed: int, link_label: str, **train) -> AttributeDict:
    """The exposed SlemTrainWorkChain ``inputs`` of committee member ``seed``: the config with
    ``training.seed: seed`` (whatever seed it gave), and the ``train`` ports given (dataset, basis,
    parent_model) set."""
    config = copy.deepcopy(inputs.train.config.get_dict())
    config.setdefault("training", {})["seed"] = seed
    member = AttributeDict(copy.copy(inputs))
    member.train = AttributeDict({**inputs.train, **train, "config": orm.Dict(config)})
    member.metadata = {"call_link_label": link_label}
    return member


def validate_inputs(inputs: dict, _) -> str | None:
    if inputs["n_models"].value < 2:
        return f"n_models must be at least 2 (a committee), got {inputs['n_models'].value}"
    return None


class SlemCommitteeWorkChain(WorkChain):
    """Train ``n_models`` members that differ only in their seed, then measure their spread on candidates.

    Member ``k`` trains with ``training.seed: k``, whatever seed the config gives."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(SlemTrainWorkChain, namespace="train")
        spec.input("n_models", valid_type=orm.Int, default=lambda: orm.Int(4))
        spec.input("candidates", valid_type=DatasetData, help="Frames to rank (reference H where known).")
        spec.expose_inputs(
            SlemCommitteeCalculation, namespace="committee", exclude=("models", "candidates", "structures")
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.train_members, cls.inspect_members, cls.run_committee, cls.results)
        spec.output_namespace("models", valid_type=SlemModelData, dynamic=True)
        spec.output("report", valid_type=orm.Dict)
        spec.exit_code(
            401, "ERROR_MEMBER_FAILED", message="SlemTrainWorkChain of member {seed} failed: {status}"
        )
        spec.exit_code(402, "ERROR_COMMITTEE_FAILED", message="slem.committee failed: {status}")

    def train_members(self):
        inputs = AttributeDict(self.exposed_inputs(SlemTrainWorkChain, "train"))
        for seed in range(self.inputs.n_models.value):
            member = member_inputs(inputs, seed, f"member_{seed}")
            self.to_context(**{f"member_{seed}": self.submit(SlemTrainWorkChain, **member)})

    def inspect_members(self):
        for seed in range(self.inputs.n_models.value):
            node = self.ctx[f"member_{seed}"]
            if not node.is_finished_ok:
                return self.exit_codes.ERROR_MEMBER_FAILED.format(seed=seed, status=node.exit_status)
            self.out(f"models.member_{seed}", node.outputs.model)
        return None

    def run_committee(self):
        inputs = AttributeDict(self.exposed_inputs(SlemCommitteeCalculation, "committee"))
        inputs.models = {
            f"member_{seed}": self.ctx[f"member_{seed}"].outputs.model
            for seed in range(self.inputs.n_models.value)
        }
        inputs.candidates = self.inputs.candidates
        inputs.metadata = {**inputs.get("metadata", {}), "call_link_label": "committee"}
        return ToContext(committee=self.submit(SlemCommitteeCalculation, **inputs))

    def results(self):
        node = self.ctx.committee
        if not node.is_finished_ok:
            return self.exit_codes.ERROR_COMMITTEE_FAILED.format(status=node.exit_status)
        self.out("report", node.outputs.report)
        return None
