"""Parser of ``slem.project``: the frame becomes an ``OperatorData``; the sum rule is checked.

Only the file's headers are read here (the daemon never loads operator arrays)."""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.parsers import Parser

from aiida_slem.data.operator import OperatorData

from .common import command_error, read_summary

# canonical attribute name <- key(s) of 'slem project --summary' (slem/projection/project.py); energies in eV
ALIASES = {
    "tr_DS": ("sum_tr_ds", "tr_DS"),
    "tr_DH": ("sum_tr_dh_ev", "tr_DH"),
    "n_electrons": ("n_electrons",),
    "scf_converged": ("scf_converged",),
    "band_energy": ("band_energy_ev", "band_energy"),
    "basis_label": ("basis_label",),
    "kmesh": ("kmesh",),
}


def normalise_summary(summary: dict) -> dict:
    """Summary with the aliased keys under their canonical names (nested ``checks`` flattened)."""
    flat = (
        {**summary, **summary.get("checks", {})} if isinstance(summary.get("checks"), dict) else dict(summary)
    )
    result = dict(flat)
    for canonical, names in ALIASES.items():
        for name in names:
            if name in flat:
                result[canonical] = flat[name]
                break
    if "tr_DH" in result and "band_energy" in result:
        try:
            result["band_energy_error"] = float(result["tr_DH"]) - float(result["band_energy"])
        except (TypeError, ValueError):
            pass
    return result


class SlemProjectParser(Parser):
    def parse(self, **kwargs):
        calc = self.node.process_class
        temporary = kwargs.get("retrieved_temporary_folder")
        if temporary is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_TEMPORARY_FOLDER
        path = pathlib.Path(temporary) / calc._FRAME_FILE
        if not path.is_file():
            message = command_error(self)
            if message:
                return self.exit_codes.ERROR_COMMAND_FAILED.format(message=message)
            return self.exit_codes.ERROR_OUTPUT_FRAME_MISSING
        try:
            summary = normalise_summary(read_summary(self, calc._SUMMARY_FILE))
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_SUMMARY_MISSING
        except ValueError as exc:
            return self.exit_codes.ERROR_OUTPUT_SUMMARY_INVALID.format(message=str(exc))
        try:
            operator = OperatorData(path, summary=summary)
        except ValueError as exc:
            return self.exit_codes.ERROR_OUTPUT_FRAME_INVALID.format(message=str(exc))
        self.out("operator", operator)
        self.out("output_parameters", orm.Dict(summary))
        return self.check_quality(summary)

    def check_quality(self, summary: dict):
        """Outputs stay attached, so a failed frame can be inspected; the exit code marks it unusable."""
        if summary.get("scf_converged") is False:
            return self.exit_codes.ERROR_SCF_NOT_CONVERGED
        if "tr_DS" in summary and "n_electrons" in summary:
            deviation = abs(float(summary["tr_DS"]) - float(summary["n_electrons"]))
            tolerance = self.node.inputs.sum_rule_tolerance.value
            if deviation > tolerance:
                return self.exit_codes.ERROR_SUM_RULE_VIOLATED.format(
                    deviation=deviation, tolerance=tolerance
                )
        else:
            self.logger.warning("summary.json lacks tr_DS or n_electrons; the sum rule was not checked")
        return None
