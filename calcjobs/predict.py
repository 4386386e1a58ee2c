"""``slem.predict``: H, S, D blocks of structures from a trained ``SlemModelData``, by ``slem predict``."""

from __future__ import annotations

import io

from aiida import orm

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.model import SlemModelData
from aiida_slem.data.operator import OperatorData

from .base import SlemCommandCalculation
from .checks import excluded
from .gpu import calcjob_gpu_request, check_gpu_inputs, define_gpu_inputs, gpu_inputs

MODEL_FILE = "model.pt"
STRUCTURE_FOLDER = "structures"
DATASET_FILE = "frames.h5"
PREDICTION_FILE = "prediction.h5"
STDOUT = "slem-predict.out"
STDERR = "slem-predict.err"


def _elements(inputs: dict) -> list[tuple[str, set[str]]]:
    """(description, elements) of every structure source in the inputs."""
    sources = []
    if "structure" in inputs:
        sources.append(("structure", set(inputs["structure"].get_symbols_set())))
    for label, structure in (inputs.get("structures") or {}).items():
        sources.append((f"structures.{label}", set(structure.get_symbols_set())))
    if "dataset" in inputs:
        sources.append(("dataset", set(inputs["dataset"].base.attributes.get("elements", []))))
    return sources


def source_problem(inputs: dict) -> str | None:
    """The model against what it predicts: one source, known elements, the same basis."""
    given = [key for key in ("structure", "structures", "dataset") if inputs.get(key)]
    if len(given) != 1:
        return f"give exactly one of structure, structures or dataset (got {given or 'none'})"
    model = inputs["model"]
    species = set(model.base.attributes.get("species", []))
    for where, elements in _elements(inputs):
        unknown = sorted(elements - species)
        if unknown:
            return (
                f"{where} contains element(s) {unknown} that model <{model.pk or 'unstored'}> was not "
                f"trained on (species {sorted(species)}); train a model that includes them"
            )
    if "dataset" in inputs:
        model_basis = model.base.attributes.get("basis", {})
        differing = {
            el: (model_basis.get(el), shells)
            for el, shells in inputs["dataset"].base.attributes.get("basis", {}).items()
            if model_basis.get(el) != shells
        }
        if differing:
            return (
                f"the dataset's basis differs from the model's (element: (model, dataset)) {differing}; the "
                "predictions could not be compared with its frames"
            )
    return None


def validate_inputs(inputs: dict, ctx) -> str | None:
    # a WorkChain that supplies the model and the frames itself (SlemValidationWorkChain) excludes them
    error = None if excluded(ctx, "model") else source_problem(inputs)
    if error:
        return error
    gpus, _, _ = gpu_inputs(inputs)
    if gpus > 1:
        return f"prediction runs on one device; set gpus to 0 or 1, not {gpus}"
    code = inputs.get("code")
    computer = inputs.get("metadata", {}).get("computer") or getattr(code, "computer", None)
    if computer is None:
        return None
    return check_gpu_inputs(inputs, computer.scheduler_type)


class SlemPredictCalculation(SlemCommandCalculation):
    """Predict operator blocks: one ``structure`` gives an ``OperatorData``; ``structures`` or a ``dataset``
    give a ``DatasetData`` (frames in the order of the sorted structure labels, or of the dataset)."""

    _PARSER = "slem.predict"
    _STDOUT = STDOUT
    _STDERR = STDERR

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=SlemModelData, help="The trained model.")
        spec.input("structure", valid_type=orm.StructureData, required=False, help="One structure.")
        spec.input_namespace(
            "structures",
            valid_type=orm.StructureData,
            dynamic=True,
            required=False,
            help="Several structures, by label.",
        )
        spec.input(
            "dataset",
            valid_type=DatasetData,
            required=False,
            help="Frames whose structures are predicted (their blocks are ignored).",
        )
        spec.input(
            "edge_chunk",
            valid_type=orm.Int,
            required=False,
            help="Edges per model chunk; bounds the memory of big structures.",
        )
        define_gpu_inputs(spec, "0: CPU, 1: one GPU.")
        spec.inputs.validator = validate_inputs
        spec.output(
            "operators",
            valid_type=OperatorData,
            required=False,
            help="OperatorData: the predicted blocks of `structure`.",
        )
        spec.output(
            "predictions",
            valid_type=DatasetData,
            required=False,
            help="DatasetData: the predicted blocks of `structures` or of the `dataset` frames.",
        )
        spec.exit_code(
            301, "ERROR_MISSING_OUTPUT", message="'slem predict' wrote no prediction file: {message}"
        )
        spec.exit_code(302, "ERROR_INVALID_OUTPUT", message="The prediction file is not valid: {message}")
        spec.exit_code(
            303,
            "ERROR_WRONG_FRAME_COUNT",
            message="Expected {expected} predicted frames, the file holds {found}.",
        )

    def prepare_for_submission(self, folder):
        inputs = self.inputs
        local_copy_list = [(inputs.model.uuid, inputs.model.filename, MODEL_FILE)]
        sources = []
        if "dataset" in inputs:
            local_copy_list.append((inputs.dataset.uuid, inputs.dataset.filename, DATASET_FILE))
            sources.append(DATASET_FILE)
        else:
            structures = {"structure": inputs.structure} if "structure" in inputs else dict(inputs.structures)
            folder.get_subfolder(STRUCTURE_FOLDER, create=True)
            for label in sorted(structures):
                path = f"{STRUCTURE_FOLDER}/{label}.xyz"
                with folder.open(path, "w") as handle:
                    handle.write(extxyz(structures[label]))
                sources.append(path)

        gpus = inputs.gpus.value
        arguments = [
            "predict",
            MODEL_FILE,
            *sources,
            "-o",
            PREDICTION_FILE,
            "--device",
            "cuda" if gpus else "cpu",
        ]
        if "edge_chunk" in inputs:
            arguments += ["--edge-chunk", str(inputs.edge_chunk.value)]

        request = calcjob_gpu_request(self)
        self.add_scheduler_commands(request.scheduler_commands)
        return self.command_calcinfo(
            arguments, local_copy_list, retrieve_temporary=[PREDICTION_FILE],
            prepend_text=request.prepend_text,
        )


def extxyz(structure: orm.StructureData) -> str:
    """Extended XYZ keeps cell and pbc, which ``slem predict`` (ase) needs for periodic images."""
    import ase.io

    buffer = io.StringIO()
    ase.io.write(buffer, structure.get_ase(), format="extxyz")
    return buffer.getvalue()
