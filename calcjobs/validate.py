"""``slem.validate``: errors of predicted frames against held-out reference frames, by ``slem validate``.

The Bloch sums, dense generalised eigen-solves (up to 3000 orbitals per k-point) and plots of a validation
run on the compute node, like every other heavy step. The daemon only writes the settings, electron counts,
splits and pw.x eigenvalues (a few kB of numbers) into the job's folder, and the parser stores the report,
the verdict and the PNG plots.
"""

from __future__ import annotations

import json

from aiida import orm

from aiida_slem.data.dataset import DatasetData
from slem.evaluate.settings import SPLITS, Settings, unknown_splits

from .base import SlemCommandCalculation

PREDICTIONS_FILE = "predictions.h5"
REFERENCE_FILE = "reference.h5"
SETTINGS_FILE = "settings.json"
ELECTRONS_FILE = "electrons.json"
SPLITS_FILE = "splits.json"
PW_BANDS_FILE = "pw_bands.json"
REPORT_FILE = "report.json"
PLOT_FOLDER = "plots"
STDOUT = "slem-validate.out"
STDERR = "slem-validate.err"


def validate_inputs(inputs: dict, _) -> str | None:
    predictions, reference = inputs["predictions"], inputs["reference"]
    atoms = [node.base.attributes.get("n_atoms") for node in (predictions, reference)]
    if atoms[0] != atoms[1]:
        return (
            f"the predictions hold frames of {atoms[0]} atoms, the reference of {atoms[1]}: predict "
            "exactly the reference frames (slem.predict with dataset=reference)"
        )
    if "settings" in inputs:
        try:
            Settings.from_dict(inputs["settings"].get_dict())
        except (TypeError, ValueError) as exc:
            return str(exc)
    if "electrons" in inputs:
        bad = {k: v for k, v in inputs["electrons"].get_dict().items() if not isinstance(v, (int, float))}
        if bad:
            return f"electrons must map frame labels to electron counts; not numbers: {bad}"
    if "splits" in inputs:
        unknown = unknown_splits(inputs["splits"].get_dict())
        if unknown:
            return f"unknown split(s) {unknown}; a frame's split is one of {list(SPLITS)}"
    return None


class SlemValidateCalculation(SlemCommandCalculation):
    """Block and band errors, the verdict and plots of predicted frames against their reference frames."""

    _PARSER = "slem.validate"
    _STDOUT = STDOUT
    _STDERR = STDERR

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("predictions", valid_type=DatasetData, help="Predicted frames (slem.predict).")
        spec.input("reference", valid_type=DatasetData, help="The reference frames they predict, in order.")
        spec.input(
            "settings",
            valid_type=orm.Dict,
            required=False,
            help="kpath_npoints, n_random_k, seed, conduction_window_eV, overlap_tolerance, thresholds; for "
            "metals fermi_window_eV, fermi_kspacing, fermi_smearing_eV, metal_thresholds.",
        )
        spec.input(
            "electrons",
            valid_type=orm.Dict,
            required=False,
            help="{frame label: electron count}; a frame without one counts its own (metadata, or Tr(DS)).",
        )
        spec.input(
            "splits", valid_type=orm.Dict, required=False, help="{frame label: transfer split} (SPLITS)."
        )
        spec.input_namespace(
            "pw_bands",
            valid_type=orm.BandsData,
            dynamic=True,
            required=False,
            help="pw.x eigenvalues at the validation k-points, by frame label.",
        )
        spec.inputs.validator = validate_inputs
        spec.output("metrics", valid_type=orm.Dict, help="blocks, bands, summary, splits and verdict.")
        spec.output("passed", valid_type=orm.Bool, help="Whether every threshold is met.")
        spec.output_namespace("plots", valid_type=orm.SinglefileData, dynamic=True)
        spec.default_output_node = "metrics"
        spec.exit_code(301, "ERROR_MISSING_OUTPUT", message="'slem validate' wrote no report: {message}")
        spec.exit_code(302, "ERROR_INVALID_OUTPUT", message="The validation report is not valid: {message}")

    def prepare_for_submission(self, folder):
        inputs = self.inputs
        arguments = ["validate", PREDICTIONS_FILE, REFERENCE_FILE, "-o", REPORT_FILE, "--plots", PLOT_FOLDER]
        files = {
            SETTINGS_FILE: ("--settings", inputs.settings.get_dict() if "settings" in inputs else None),
            ELECTRONS_FILE: ("--electrons", inputs.electrons.get_dict() if "electrons" in inputs else None),
            SPLITS_FILE: ("--splits", inputs.splits.get_dict() if "splits" in inputs else None),
            PW_BANDS_FILE: (
                "--pw-bands",
                {
                    label: {"kpoints": node.get_kpoints().tolist(), "bands": node.get_bands().tolist()}
                    for label, node in (inputs.get("pw_bands") or {}).items()
                }
                or None,
            ),
        }
        for name, (option, data) in files.items():
            if data is None:
                continue
            with folder.open(name, "w") as handle:
                json.dump(data, handle)
            arguments += [option, name]
        return self.command_calcinfo(
            arguments,
            [
                (inputs.predictions.uuid, inputs.predictions.filename, PREDICTIONS_FILE),
                (inputs.reference.uuid, inputs.reference.filename, REFERENCE_FILE),
            ],
            retrieve=[REPORT_FILE, (f"{PLOT_FOLDER}/*.png", ".", 1)],
        )
