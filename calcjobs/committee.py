"""``slem.committee``: the spread of a committee of models (one training config, different seeds) on
candidate frames, by ``slem committee`` on the compute node.

The report node holds each frame's H and band spread, the error of the committee mean where the frames carry a
reference H, the rank correlation of the two, and the most uncertain frames by ``rank_by``: the ones to
compute with DFT next (issue 16's active selection).
"""

from __future__ import annotations

from aiida import orm

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData
from slem.evaluate.committee import RANKINGS

from .base import SlemCommandCalculation
from .checks import excluded
from .predict import extxyz

CANDIDATES_FILE = "candidates.h5"
STRUCTURE_FOLDER = "structures"
REPORT_FILE = "committee.json"
STDOUT = "slem-committee.out"
STDERR = "slem-committee.err"
MODEL_FOLDER = "models"


def validate_rank_by(value: orm.Str, _ctx) -> str | None:
    if value.value not in RANKINGS:
        return f"rank_by {value.value!r} is not one of {', '.join(RANKINGS)}"
    return None


def validate_inputs(inputs: dict, ctx) -> str | None:
    if excluded(ctx, "models"):
        return None  # a WorkChain supplies the members and the candidates once they exist
    models = dict(inputs.get("models") or {})
    if len(models) < 2:
        return f"a committee needs at least 2 models, got {len(models)}"
    keys = {
        label: (sorted(m.base.attributes.get("species", [])), m.base.attributes.get("basis", {}))
        for label, m in models.items()
    }
    first = next(iter(keys.values()))
    differing = sorted(label for label, key in keys.items() if key != first)
    if differing:
        return (
            f"committee models {differing} have other species or basis than the rest; a committee is one "
            "training config with different seeds"
        )
    structures = dict(inputs.get("structures") or {})
    if ("candidates" in inputs) == bool(structures):
        return "give the candidates either as a DatasetData ('candidates') or as 'structures', not both"
    if structures:
        elements = {el for structure in structures.values() for el in structure.get_symbols_set()}
    else:
        elements = set(inputs["candidates"].base.attributes.get("elements", []))
    unknown = sorted(elements - set(first[0]))
    if unknown:
        return f"the candidates contain element(s) {unknown} the committee was not trained on ({first[0]})"
    return None


class SlemCommitteeCalculation(SlemCommandCalculation):
    """Committee spread on candidate frames, its rank correlation with the true error, and a selection."""

    _PARSER = "slem.committee"
    _STDOUT = STDOUT
    _STDERR = STDERR

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("models", valid_type=SlemModelData, dynamic=True, help="The members, by label.")
        spec.input(
            "candidates", valid_type=DatasetData, required=False,
            help="Candidate frames (with reference H where known).",
        )
        spec.input_namespace(
            "structures", valid_type=orm.StructureData, dynamic=True, required=False,
            help="Unlabelled candidate structures, by label (no reference: spread only).",
        )
        spec.input("select", valid_type=orm.Int, default=lambda: orm.Int(0),
                   help="How many of the most uncertain frames to list.")
        spec.input("rank_by", valid_type=orm.Str, default=lambda: orm.Str("sigma_H_meV"),
                   validator=validate_rank_by,
                   help=f"The spread that orders the selection, one of {', '.join(RANKINGS)}.")
        spec.input("n_kpoints", valid_type=orm.Int, default=lambda: orm.Int(4),
                   help="k-points of the band spread (Gamma plus seeded random ones).")
        spec.inputs.validator = validate_inputs
        spec.output(
            "report", valid_type=orm.Dict, help="Per-frame spread and error, rank correlation, selection."
        )
        spec.default_output_node = "report"
        spec.exit_code(301, "ERROR_MISSING_OUTPUT", message="'slem committee' wrote no report: {message}")
        spec.exit_code(302, "ERROR_INVALID_OUTPUT", message="The committee report is not valid: {message}")

    def prepare_for_submission(self, folder):
        inputs = self.inputs
        folder.get_subfolder(MODEL_FOLDER, create=True)
        copies, paths = [], []
        for label, model in sorted(inputs.models.items()):
            path = f"{MODEL_FOLDER}/{label}.pt"
            copies.append((model.uuid, model.filename, path))
            paths.append(path)
        if "candidates" in inputs:
            copies.append((inputs.candidates.uuid, inputs.candidates.filename, CANDIDATES_FILE))
            sources = [CANDIDATES_FILE]
        else:
            folder.get_subfolder(STRUCTURE_FOLDER, create=True)
            sources = []
            for label, structure in sorted(inputs.structures.items()):
                sources.append(f"{STRUCTURE_FOLDER}/{label}.xyz")  # slem committee labels it by the stem
                with folder.open(sources[-1], "w") as handle:
                    handle.write(extxyz(structure))
        arguments = ["committee", *paths, "-o", REPORT_FILE, "--select", str(inputs.select.value),
                     "--rank-by", inputs.rank_by.value,
                     "--kpoints", str(inputs.n_kpoints.value)]
        for source in sources:
            arguments += ["--frames", source]
        return self.command_calcinfo(arguments, copies, retrieve=[REPORT_FILE])
