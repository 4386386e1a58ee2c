"""GPU requests for the slem CalcJobs, translated per scheduler.

AiiDA's job resources have no GPU key, so a ``gpus`` count (plus an optional GPU type) is turned into
scheduler directives (``custom_scheduler_commands``) or, where no scheduler allocates devices, into
``CUDA_VISIBLE_DEVICES`` in the submit script's prepend text. The same module writes the walltime
watchdog: the direct scheduler enforces no walltime at all, and on batch schedulers the hard kill comes
too late to write a checkpoint, so the job stops training itself shortly before the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiida import orm

SLURM = "core.slurm"
PBSPRO = "core.pbspro"
TORQUE = "core.torque"
DIRECT = "core.direct"
TRANSLATED = (SLURM, PBSPRO, TORQUE, DIRECT)

GPU_KIND_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
WATCHDOG_MARKER = "_slem_walltime_stop"


@dataclass(frozen=True)
class GpuRequest:
    """What a job needs to get ``gpus`` devices: scheduler directives and shell lines before the command."""

    scheduler_commands: str = ""
    prepend_text: str = ""


def define_gpu_inputs(spec, gpus_help: str, gpus_per_task: bool = False) -> None:
    """The ``gpus`` and ``gpu_kind`` inputs (and Slurm's ``gpus_per_task``) of a CalcJob that runs on GPUs."""
    spec.input("gpus", valid_type=orm.Int, default=lambda: orm.Int(0), help=gpus_help)
    spec.input(
        "gpu_kind",
        valid_type=orm.Str,
        required=False,
        help="GPU type for the scheduler, e.g. 'a100' (Slurm gres gpu:a100:N, PBS gpu_model).",
    )
    if gpus_per_task:
        spec.input(
            "gpus_per_task",
            valid_type=orm.Bool,
            required=False,
            help="Slurm: request --gpus-per-task instead of --gres.",
        )


def gpu_inputs(inputs) -> tuple[int, str | None, bool]:
    """(gpus, gpu_kind, gpus_per_task) of a CalcJob's inputs: the validator's dict or ``self.inputs``."""
    gpus = int(inputs["gpus"].value) if "gpus" in inputs else 0
    kind = inputs["gpu_kind"].value if "gpu_kind" in inputs else None
    per_task = bool(inputs["gpus_per_task"].value) if "gpus_per_task" in inputs else False
    return gpus, kind, per_task


def check_gpu_inputs(inputs: dict, scheduler_type: str) -> str | None:
    """:func:`check_gpu_request` on the GPU inputs and options of a CalcJob's input validator."""
    options = inputs.get("metadata", {}).get("options", {})
    gpus, kind, per_task = gpu_inputs(inputs)
    return check_gpu_request(
        scheduler_type,
        gpus,
        kind,
        dict(options.get("resources", {})),
        options.get("custom_scheduler_commands", "") or "",
        per_task,
    )


def calcjob_gpu_request(calcjob) -> GpuRequest:
    """:func:`gpu_request` for a CalcJob being prepared, from its inputs, options and computer."""
    options = calcjob.inputs.metadata.options
    gpus, kind, per_task = gpu_inputs(calcjob.inputs)
    return gpu_request(
        calcjob.node.computer.scheduler_type,
        gpus,
        kind,
        dict(options.resources),
        options.get("max_memory_kb"),
        per_task,
    )


def check_gpu_request(
    scheduler_type: str,
    gpus: int,
    gpu_kind: str | None,
    resources: dict,
    custom_scheduler_commands: str = "",
    gpus_per_task: bool = False,
) -> str | None:
    """An error message if the request cannot be translated for this scheduler, else ``None``."""
    if gpus < 0:
        return f"gpus must be >= 0, got {gpus}"
    if gpus == 0:
        if gpu_kind or gpus_per_task:
            return "gpu_kind and gpus_per_task need gpus >= 1; set gpus or drop them"
        return None
    if gpu_kind is not None and not GPU_KIND_RE.match(gpu_kind):
        return f"gpu_kind {gpu_kind!r} may contain only letters, digits, '.', '-' and '_' (e.g. 'a100')"
    if resources.get("num_machines", 1) != 1 and gpus > 1:
        return (
            f"{gpus} GPUs on {resources.get('num_machines')} machines: multi-GPU training runs one torchrun "
            "per machine, so request num_machines=1"
        )
    if scheduler_type not in TRANSLATED and "gpu" not in custom_scheduler_commands.lower():
        return (
            f"no GPU translation is known for scheduler '{scheduler_type}'; put the GPU request into "
            f"metadata.options.custom_scheduler_commands yourself (it must mention 'gpu'), or use one of "
            f"{TRANSLATED}"
        )
    if gpus_per_task and scheduler_type != SLURM:
        return f"gpus_per_task is a Slurm option; scheduler '{scheduler_type}' does not take it"
    if gpus_per_task and gpus % _tasks(resources):
        return f"gpus_per_task: {gpus} GPUs cannot be shared evenly by {_tasks(resources)} tasks"
    return None


def _tasks(resources: dict) -> int:
    return int(resources.get("num_machines", 1)) * int(resources.get("num_mpiprocs_per_machine") or 1)


def gpu_request(
    scheduler_type: str,
    gpus: int,
    gpu_kind: str | None = None,
    resources: dict | None = None,
    max_memory_kb: int | None = None,
    gpus_per_task: bool = False,
) -> GpuRequest:
    """Directives and environment that give the job ``gpus`` devices (nothing for ``gpus == 0``)."""
    resources = resources or {}
    if gpus <= 0:
        return GpuRequest()
    typed = f"{gpu_kind}:{gpus}" if gpu_kind else str(gpus)
    if scheduler_type == SLURM:
        if gpus_per_task:
            per_task = gpus // _tasks(resources)
            return GpuRequest(f"#SBATCH --gpus-per-task={gpu_kind + ':' if gpu_kind else ''}{per_task}")
        return GpuRequest(f"#SBATCH --gres=gpu:{typed}")
    if scheduler_type == PBSPRO:
        return GpuRequest(_pbspro_select(resources, gpus, gpu_kind, max_memory_kb))
    if scheduler_type == TORQUE:
        ppn = resources.get("num_mpiprocs_per_machine") or 1
        return GpuRequest(
            f"#PBS -l nodes={resources.get('num_machines', 1)}:ppn={ppn}:gpus={gpus}"
            + (f":{gpu_kind}" if gpu_kind else "")
        )
    if scheduler_type == DIRECT:
        # no scheduler hands out devices: pin the first N so that other jobs' devices stay untouched
        devices = ",".join(str(i) for i in range(gpus))
        return GpuRequest(prepend_text=f"export CUDA_VISIBLE_DEVICES={devices}")
    return GpuRequest()  # the user's custom_scheduler_commands carry the request (checked beforehand)


def _pbspro_select(resources: dict, gpus: int, gpu_kind: str | None, max_memory_kb: int | None) -> str:
    """A full ``select`` statement with ``ngpus``.

    The PBSPro plugin writes its own ``#PBS -l select=...`` without GPUs and offers no hook into it;
    custom commands come after it, and qsub keeps the last value given for a resource, so this line
    repeats AiiDA's chunk (machines, mpiprocs, ncpus, mem) and adds ``ngpus`` (and ``gpu_model``)."""
    select = f"select={resources.get('num_machines', 1)}"
    if resources.get("num_mpiprocs_per_machine"):
        select += f":mpiprocs={resources['num_mpiprocs_per_machine']}"
    if resources.get("num_cores_per_machine"):
        select += f":ncpus={resources['num_cores_per_machine']}"
    if max_memory_kb:
        select += f":mem={int(max_memory_kb)}kb"
    select += f":ngpus={gpus}"
    if gpu_kind:
        select += f":gpu_model={gpu_kind}"
    return f"#PBS -l {select}"


def walltime_stop_seconds(
    scheduler_type: str, max_wallclock_seconds: int | None, margin: int | None = None
) -> int | None:
    """When to ask training to stop: ``max_wallclock_seconds`` minus a margin for writing the checkpoint.

    The direct scheduler never kills, so there the full walltime is used; elsewhere the default margin is
    10% of the walltime, capped at 5 minutes."""
    if not max_wallclock_seconds:
        return None
    if margin is None:
        margin = 0 if scheduler_type == DIRECT else min(300, max_wallclock_seconds // 10)
    return max(1, int(max_wallclock_seconds) - int(margin))


def watchdog_text(stop_after: int) -> tuple[str, str]:
    """(prepend, append) shell text: after ``stop_after`` s send SIGTERM to every process the job script
    started (torchrun workers included), which makes ``slem train`` write latest.pt and exit 120.

    The marker file tells the parser that a missing status.json means 'stopped at walltime during
    start-up', not a crash. The watchdog is removed when the command ends, so it never outlives the job."""
    prepend = f"""\
# slem: stop training cleanly {stop_after} s into the job (checkpoint, then exit 120)
slem_tree() {{ local c; for c in $(pgrep -P "$1"); do echo "$c"; slem_tree "$c"; done; }}
(
  trap 'kill "$slem_sleep" 2>/dev/null; exit 0' TERM
  sleep {stop_after} & slem_sleep=$!
  wait "$slem_sleep"
  touch {WATCHDOG_MARKER}
  for c in $(pgrep -P $$); do [ "$c" = "$BASHPID" ] || kill -TERM $(slem_tree "$c") "$c"; done
) >/dev/null 2>&1 &
slem_watchdog=$!"""
    append = 'kill "$slem_watchdog" 2>/dev/null; wait "$slem_watchdog" 2>/dev/null'
    return prepend, append
