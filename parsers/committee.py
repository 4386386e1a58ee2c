"""Parser of ``slem.committee``: the report becomes a Dict."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.committee import REPORT_FILE, STDERR

from .common import read_report


class SlemCommitteeParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        report, failure = read_report(self, REPORT_FILE, STDERR)
        if failure:
            return failure
        inputs = self.node.inputs
        expected = (
            inputs.candidates.base.attributes.get("n_frames") if "candidates" in inputs
            else len(inputs.structures)
        )
        if len(report.get("frames", [])) != expected:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(
                message=f"{len(report.get('frames', []))} frames in {REPORT_FILE}, {expected} candidates"
            )
        self.out("report", orm.Dict(report))
        return None
