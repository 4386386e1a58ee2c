"""What every CalcJob that runs one ``slem`` subcommand shares: serial defaults, exit code 300, the thread
count from the job's resources, and the assembly of CodeInfo/CalcInfo (stdout, stderr, retrieve lists)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from aiida.common import datastructures
from aiida.engine import CalcJob


def threads_per_rank(resources: dict, ranks: int = 1) -> int | None:
    """CPU threads per ``slem`` process (per torchrun rank) from the cores the job requested on its machine.

    slem runs one process per machine (``withmpi`` False), so it may use all the machine's requested cores:
    ``num_cores_per_machine``, else ``num_cores_per_mpiproc`` x ``num_mpiprocs_per_machine``, else
    ``num_mpiprocs_per_machine`` when it is above 1 (each task is given at least one core). None when the job
    requested no more than the default one task: then ``slem`` takes the CPUs of its affinity mask
    (slem/threads.py), which batch schedulers restrict to the allocation."""
    mpiprocs = max(int(resources.get("num_mpiprocs_per_machine") or 1), 1)
    if resources.get("num_cores_per_machine"):
        cores = int(resources["num_cores_per_machine"])
    elif resources.get("num_cores_per_mpiproc"):
        cores = int(resources["num_cores_per_mpiproc"]) * mpiprocs
    elif mpiprocs > 1:
        cores = mpiprocs
    else:
        return None
    return max(cores // max(int(ranks), 1), 1)


def threads_text(resources: dict, ranks: int = 1) -> str:
    """The submit script's line that gives ``slem`` its thread count (read by slem/threads.py), or ''."""
    threads = threads_per_rank(resources, ranks)
    if threads is None:
        return ""
    return f"export OMP_NUM_THREADS={threads}  # slem: threads per process from the job's resources"


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
        ranks: int = 1,
    ) -> datastructures.CalcInfo:
        """CalcInfo for ``slem ARGUMENTS``; stdout (and stderr, if the job keeps one) are always retrieved.

        The prepend text starts with the thread count for ``ranks`` processes from the job's resources; it
        comes after the computer's and code's prepend texts, so it overrides their OMP_NUM_THREADS, and
        before ``metadata.options.prepend_text``, which can override it."""
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
        threads = threads_text(dict(self.inputs.metadata.options.resources), ranks)
        calcinfo.prepend_text = "\n".join(text for text in (threads, prepend_text) if text)
        calcinfo.append_text = append_text
        calcinfo.retrieve_list = [stdout, *([self._STDERR] if self._STDERR else []), *retrieve]
        calcinfo.retrieve_temporary_list = list(retrieve_temporary)
        return calcinfo
