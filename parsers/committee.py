"""Parser of ``slem.committee``: the report becomes a Dict."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.committee import REPORT_FILE, STDERR

from .common import read_summary, stderr_tail


class SlemCommitteeParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        try:
            report = read_summary(self, REPORT_FILE)
        except FileNotFoundError:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(message=stderr_tail(self, STDERR))
        except ValueError as exc:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message=str(exc))
        expected = self.node.inputs.candidates.base.attributes.get("n_frames")
        if len(report.get("frames", [])) != expected:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(
                message=f"{len(report.get('frames', []))} frames in {REPORT_FILE}, {expected} candidates"
            )
        self.out("report", orm.Dict(report))
        return None
