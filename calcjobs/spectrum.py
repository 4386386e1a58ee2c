"""``slem.spectrum``: band edges and DOS of a (predicted) frame by ``slem spectrum``, without dense
diagonalisation.

Sparse H(k), S(k), the kernel polynomial method for the DOS and shift-invert Lanczos with the inertia of the
sparse LU for the HOMO and LUMO (``slem/spectrum``). The frame is an ``OperatorData`` (e.g. the ``operators``
output of ``slem.predict``) or one frame of a ``DatasetData``.
"""

from __future__ import annotations

from aiida import orm

from aiida_slem.data.dataset import DatasetData
from aiida_slem.data.operator import OperatorData

from .base import SlemCommandCalculation

FRAMES_FILE = "frames.h5"
RESULT_FILE = "spectrum.json"
PLOT_FILE = "dos.png"
STDOUT = "slem-spectrum.out"
STDERR = "slem-spectrum.err"

# parameter -> (type(s), command-line option); lists give one argument per element
PARAMETERS = {
    "kpoint": (list, "--kpoint"),
    "supercell": (list, "--supercell"),
    "electrons": ((int, float), "--electrons"),
    "moments": (int, "--moments"),
    "vectors": (int, "--vectors"),
    "edges": (bool, None),
    "nearest": (int, "--nearest"),
    "overlap_solver": (str, "--overlap-solver"),
    "points": (int, "--points"),
    "emin": ((int, float), "--emin"),
    "emax": ((int, float), "--emax"),
    "seed": (int, "--seed"),
}


def check_parameters(parameters: dict) -> str | None:
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        return f"unknown spectrum parameter(s) {unknown}; known: {sorted(PARAMETERS)}"
    for key, value in parameters.items():
        kind = PARAMETERS[key][0]
        if isinstance(value, bool) and kind is not bool:
            return f"parameter {key} must be {kind}, got a bool"
        if not isinstance(value, kind):
            return f"parameter {key} must be {kind}, got {type(value).__name__} {value!r}"
        if kind is list and (len(value) != 3 or not all(isinstance(x, (int, float)) for x in value)):
            return f"parameter {key} must hold three numbers, got {value!r}"
    if "supercell" in parameters and not all(isinstance(x, int) and x >= 1 for x in parameters["supercell"]):
        return f"supercell must be three positive integers, got {parameters['supercell']}"
    for key in ("moments", "vectors", "nearest", "points"):
        if key in parameters and parameters[key] < 1:
            return f"parameter {key} must be positive, got {parameters[key]}"
    if parameters.get("overlap_solver", "auto") not in ("auto", "cg", "lu"):
        return f"overlap_solver must be auto, cg or lu, got {parameters['overlap_solver']!r}"
    return None


def validate_inputs(inputs: dict, _) -> str | None:
    given = [key for key in ("operators", "dataset") if key in inputs]
    if len(given) != 1:
        return f"give exactly one of operators or dataset (got {given or 'none'})"
    if "index" in inputs and "dataset" not in inputs:
        return "index selects a frame of a dataset; give it with dataset only"
    source = inputs[given[0]]
    operators = source.base.attributes.get("operators", [])
    if operators and not {"H", "S"} <= set(operators):
        return f"{given[0]} <{source.pk or 'unstored'}> holds operators {operators}; a spectrum needs H and S"
    if "dataset" in inputs:
        n_frames = source.base.attributes.get("n_frames")
        index = inputs["index"].value if "index" in inputs else 0
        if n_frames is not None and not 0 <= index < n_frames:
            return f"index {index} but the dataset holds {n_frames} frame(s)"
    if "parameters" in inputs:
        return check_parameters(inputs["parameters"].get_dict())
    return None


def command_arguments(parameters: dict) -> list[str]:
    arguments: list[str] = []
    for key, value in sorted(parameters.items()):
        option = PARAMETERS[key][1]
        if key == "edges":
            arguments.append("--edges" if value else "--no-edges")
        elif isinstance(value, list):
            arguments += [option, *map(str, value)]
        else:
            arguments += [option, str(value)]
    return arguments


class SlemSpectrumCalculation(SlemCommandCalculation):
    """Band edges (HOMO, LUMO, gap) and the KPM density of states of one frame."""

    _PARSER = "slem.spectrum"
    _STDOUT = STDOUT
    _STDERR = STDERR

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("operators", valid_type=OperatorData, required=False, help="One frame with H and S.")
        spec.input("dataset", valid_type=DatasetData, required=False, help="Frames; `index` picks one.")
        spec.input("index", valid_type=orm.Int, required=False, help="Frame of `dataset` (default 0).")
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Options of 'slem spectrum': kpoint, supercell, electrons, moments, vectors, edges, "
            "nearest, overlap_solver, points, emin, emax, seed.",
        )
        spec.inputs.validator = validate_inputs
        spec.output(
            "output_parameters",
            valid_type=orm.Dict,
            help="Summary: sizes, electron count, HOMO/LUMO/gap (eV), KPM settings and E_F, timings.",
        )
        spec.output(
            "dos",
            valid_type=orm.ArrayData,
            help="Arrays energies (eV), dos (states/eV per cell, spin not counted; spinor states for a "
            "spin-orbit frame), integrated_dos.",
        )
        spec.output(
            "edges",
            valid_type=orm.ArrayData,
            required=False,
            help="Arrays eigenvalues (eV) and indices (1-based) near the gap; attributes homo, lumo, gap "
            "(eV).",
        )
        spec.output("dos_plot", valid_type=orm.SinglefileData, required=False, help=PLOT_FILE)
        spec.default_output_node = "output_parameters"
        spec.exit_code(301, "ERROR_MISSING_OUTPUT", message="'slem spectrum' wrote no result: {message}")
        spec.exit_code(302, "ERROR_INVALID_OUTPUT", message="The spectrum result is not valid: {message}")

    def prepare_for_submission(self, folder):
        inputs = self.inputs
        source = inputs.operators if "operators" in inputs else inputs.dataset
        parameters = inputs.parameters.get_dict() if "parameters" in inputs else {}
        arguments = ["spectrum", FRAMES_FILE, "-o", RESULT_FILE, "--plot", PLOT_FILE]
        if "dataset" in inputs and "index" in inputs:
            arguments += ["--index", str(inputs.index.value)]
        arguments += command_arguments(parameters)
        return self.command_calcinfo(
            arguments,
            [(source.uuid, source.filename, FRAMES_FILE)],
            retrieve=[RESULT_FILE, PLOT_FILE],
        )
