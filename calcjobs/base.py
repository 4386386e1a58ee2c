"""What every CalcJob that runs one ``slem`` subcommand shares: serial defaults, exit code 300 and the
assembly of CodeInfo/CalcInfo (stdout, stderr and the retrieve lists)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from aiida.common import datastructures
from aiida.engine import CalcJob


class SlemCommandCalculation(CalcJob):
    """Base of the ``slem.*`` CalcJobs. Subclasses set the parser entry point and output file names."""

    _PARSER: ClassVar[str]
    _STDOUT: ClassVar[str]
    _STDERR: ClassVar[str | None] = None

    @classmethod
    def define(cls, spec):
        super().define(spec)
        options = spec.inputs["metadata"]["options"]
        # one process: slem parallelises with threads (CPU) or torchrun (GPUs), never through mpirun
        options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        options["withmpi"].default = False
        options["parser_name"].default = cls._PARSER
        options["output_filename"].default = cls._STDOUT
        spec.exit_code(
            300, "ERROR_NO_RETRIEVED_TEMPORARY_FOLDER", message="The temporary retrieved folder is missing."
        )

    def add_scheduler_commands(self, commands: str) -> None:
        """Append directives (e.g. a GPU request) to the user's custom_scheduler_commands.

        Built from immutable inputs, so a second prepare_for_submission (a retried upload) sets the
        same value again instead of appending twice."""
        if not commands:
            return
        user = self.inputs.metadata.options.get("custom_scheduler_commands", "") or ""
        merged = "\n".join(part for part in (user, commands) if part)
        self.node.set_option("custom_scheduler_commands", merged)

    def command_calcinfo(
        self,
        arguments: Sequence[str],
        local_copy_list: Sequence[tuple],
        retrieve: Sequence[str] = (),
        retrieve_temporary: Sequence[str] = (),
        remote_copy_list: Sequence[tuple] = (),
        prepend_text: str = "",
        append_text: str = "",
    ) -> datastructures.CalcInfo:
        """CalcInfo for ``slem ARGUMENTS``; stdout (and stderr, if the job keeps one) are always retrieved."""
        stdout = self.inputs.metadata.options.output_filename
        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = list(arguments)
        codeinfo.stdout_name = stdout
        if self._STDERR:
            codeinfo.stderr_name = self._STDERR

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = list(local_copy_list)
        calcinfo.remote_copy_list = list(remote_copy_list)
        calcinfo.prepend_text = prepend_text
        calcinfo.append_text = append_text
        calcinfo.retrieve_list = [stdout, *([self._STDERR] if self._STDERR else []), *retrieve]
        calcinfo.retrieve_temporary_list = list(retrieve_temporary)
        return calcinfo
