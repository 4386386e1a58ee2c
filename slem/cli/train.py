"""``slem train CONFIG``: train a SLEM model; exit codes and status.json in docs/training.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click

# Tests set this to N to have the run send itself SIGTERM after step N: the stop then lands at a known
# step, through the same signal handler as the walltime watchdog, however slow the machine is.
SIGNAL_AT_STEP_ENV = "SLEM_TEST_SIGTERM_AT_STEP"


def _exit(output_dir: Path | None, state: str, message: str, is_main: bool = True, **details) -> None:
    from slem.train.status import EXIT_CODES, write_status

    if output_dir is not None and is_main:
        write_status(output_dir, state, message=message, **details)
    click.echo(f"slem train: {state}: {message}", err=True)
    sys.exit(EXIT_CODES[state])


def _launch_torchrun(nproc: int, argv: list[str], output_dir: Path | None) -> None:
    """Re-run this command under torchrun; the exit code is rank 0's, read from status.json,
    because torchrun reports any worker failure as 1."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "slem.cli.main",
        "train",
        *argv,
    ]
    rc = subprocess.call(cmd)
    status = (output_dir / "status.json") if output_dir else None
    if status is not None and status.is_file():
        rc = int(json.loads(status.read_text()).get("exit_code", rc))
    sys.exit(rc)


@click.command("train")
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--resume",
    default="none",
    show_default=True,
    help="'auto' continues from OUTPUT_DIR/checkpoints/latest.pt if it exists; or a checkpoint path.",
)
@click.option(
    "--output-dir", type=click.Path(file_okay=False), default=None, help="Overrides output_dir of the config."
)
@click.option(
    "--ddp", is_flag=True, help="Data-parallel training: relaunch under torchrun with --nproc ranks."
)
@click.option("--nproc", default=2, show_default=True, help="Ranks for --ddp.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads per rank [default: OMP_NUM_THREADS, else the CPUs this process may use, divided by "
    "the ranks] (docs/threading.md).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: only on a terminal).")
def train(
    config_path: str,
    device: str,
    resume: str,
    output_dir: str | None,
    ddp: bool,
    nproc: int,
    threads: int | None,
    progress: bool | None,
) -> None:
    """Train a SLEM model from a YAML or JSON CONFIG (see docs/training.md).

    Relative paths in CONFIG are relative to the folder of CONFIG."""
    from slem.threads import configure_threads

    # before torch is imported: the OpenMP runtime reads its wait policy when it loads. A --ddp launcher
    # only exports the per-rank count to its workers, which apply it themselves.
    launcher = ddp and not _under_torchrun()
    configure_threads(threads, ranks=nproc if launcher else _local_ranks(), use_torch=not launcher)

    from slem.train.config import ConfigError, load_config_file, resolve_paths, validate_config

    out: Path | None = None
    try:
        raw = load_config_file(config_path)
        if isinstance(raw, dict) and isinstance(raw.get("output_dir"), str):  # for status.json on errors
            out = Path(config_path).resolve().parent / raw["output_dir"]
        if output_dir is not None and isinstance(raw, dict):
            raw["output_dir"] = str(Path(output_dir).resolve())
            out = Path(raw["output_dir"])
        config = resolve_paths(validate_config(raw), Path(config_path).resolve().parent)
        out = Path(config.output_dir)
    except ConfigError as exc:
        _exit(out, "config_error", str(exc))

    if launcher:
        _launch_torchrun(nproc, _worker_argv(config_path), out)
    _run(config, out, device, resume, progress)


def _under_torchrun() -> bool:
    # slem.train.distributed.launched_by_torchrun, without importing torch before configure_threads
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def _local_ranks() -> int:
    """Ranks that share this machine's CPUs: torchrun's LOCAL_WORLD_SIZE, else 1."""
    try:
        return max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    except ValueError:
        return 1


def _run(config, out: Path, device: str, resume: str, progress: bool | None) -> None:
    import torch

    from slem.data.frame import FrameFormatError
    from slem.train.config import ConfigError
    from slem.train.distributed import init_distributed, shutdown_distributed
    from slem.train.status import NanLossError, WalltimeStop, write_status
    from slem.train.trainer import Trainer, resolve_device

    trainer = None
    try:
        dev = resolve_device(device)
        info = init_distributed(dev)
        if dev.type == "cuda" and info.enabled:
            dev = torch.device("cuda", info.local_rank)
        if resume in ("none", "no") and (out / "checkpoints" / "latest.pt").is_file():
            raise ConfigError(
                [
                    f"{out} already holds checkpoints/latest.pt; pass --resume auto to continue "
                    "that run, or choose a new output_dir"
                ]
            )
        trainer = Trainer(config, device=dev, resume=resume, dist_info=info, progress=progress)
        if os.environ.get(SIGNAL_AT_STEP_ENV):
            trainer.callbacks.append(_sigterm_at_step(int(os.environ[SIGNAL_AT_STEP_ENV])))
        summary = trainer.run()
        if info.is_main:
            write_status(
                out, "finished", step=summary.get("steps"), best_validation=summary.get("best_validation")
            )
            click.echo(
                json.dumps({k: summary[k] for k in ("steps", "n_params", "best_validation")}, indent=2)
            )
    except ConfigError as exc:
        _exit(out, "config_error", str(exc), _is_main(trainer))
    except FrameFormatError as exc:  # a damaged dataset, or NaN/inf in a frame: named by read_frames
        _exit(out, "config_error", str(exc), _is_main(trainer))
    except WalltimeStop as exc:
        _exit(out, "walltime", str(exc), _is_main(trainer), step=trainer.step if trainer else None)
    except NanLossError as exc:
        _exit(out, "nan", str(exc), _is_main(trainer), step=trainer.step if trainer else None)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        # torch's CPU allocator reports a failed malloc as a plain RuntimeError
        if isinstance(exc, RuntimeError) and not _is_allocation_failure(exc):
            raise
        _exit(
            out,
            "oom",
            f"out of memory ({_first_line(exc)}); lower training.batch_size or set training.edge_chunk",
            _is_main(trainer),
            step=trainer.step if trainer else None,
        )
    finally:
        shutdown_distributed()


def _sigterm_at_step(step: int):
    def callback(trainer) -> None:
        # a resumed run starts at `step` and calls back from step + 1 on, so only the first run stops.
        # raise_signal, not os.kill: it runs the Python handler before returning, whereas a signal sent
        # to the process may land on a torch worker thread and reach the handler a step later.
        if trainer.step == step:
            signal.raise_signal(signal.SIGTERM)

    return callback


def _is_allocation_failure(exc: RuntimeError) -> bool:
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _worker_argv(config_path: str) -> list[str]:
    """This command's arguments without --ddp/--nproc, which only the launching process needs
    (torchrun's own parser would also mistake --nproc for its --nproc-per-node)."""
    args = sys.argv[sys.argv.index("train") + 1 :] if "train" in sys.argv else [config_path]
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif arg != "--ddp" and not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _is_main(trainer) -> bool:
    return trainer is None or trainer.dist.is_main
