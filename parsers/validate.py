"""Parser of ``slem.validate``: the report becomes a Dict, the verdict a Bool, each plot a SinglefileData."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser
from aiida_slem.calcjobs.validate import REPORT_FILE, STDERR

from .common import read_report


class SlemValidateParser(Parser):
    def parse(self, **kwargs) -> ExitCode | None:
        repository = self.retrieved.base.repository
        files = set(repository.list_object_names())
        report, failure = read_report(self, REPORT_FILE, STDERR)
        if failure:
            return failure
        try:
            passed = bool(report["verdict"]["passed"])
            plots = dict(report["plots"])
        except (KeyError, TypeError) as exc:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message=f"no {exc} in {REPORT_FILE}")
        missing = sorted(filename for filename in plots.values() if filename not in files)
        if missing:
            return self.exit_codes.ERROR_INVALID_OUTPUT.format(message=f"plots {missing} were not retrieved")
        self.out("metrics", orm.Dict(report))
        self.out("passed", orm.Bool(passed))
        for name, filename in sorted(plots.items()):
            with repository.open(filename, "rb") as handle:
                self.out(f"plots.{name}", orm.SinglefileData(handle, filename=filename))
        return None
