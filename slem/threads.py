"""How many CPU threads a ``slem`` command uses, and setting torch, OpenMP and BLAS to that count.

One rule for ``slem train``, ``slem predict`` and ``slem project`` (docs/threading.md), first match wins:

1. ``--threads N`` on the command line;
2. ``OMP_NUM_THREADS`` in the environment: the slem CalcJobs export it from the job's resources
   (``calcjobs/base.py``), and a code's prepend text or the user may set it;
3. the CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), lowered to a cgroup
   CPU quota when there is one (containers).

The count never exceeds 3., divided by the ranks of a data-parallel run, and is at least 1. torch alone
would take every core of the machine (``std::thread::hardware_concurrency``), even in a job that was
given one core of a shared node.

The wait policy: libgomp's threads spin for about 300,000 iterations after each parallel region before
they sleep. On a core shared with another process the spinning thread takes the time its partner needs,
and the partner's region waits for a descheduled thread. ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep at
once; it is read when the OpenMP runtime loads (with torch), so :func:`configure_threads` must run before
``import torch`` to change it. A policy the user set stays.

OpenBLAS (numpy, scipy) is set through ``OPENBLAS_NUM_THREADS`` before it loads and through its own C API
when it is already loaded: threadpoolctl is not a dependency, so the copies are found in
``/proc/self/maps``; elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ENV_THREADS = "OMP_NUM_THREADS"
# every runtime that sizes a thread pool from the environment in the torch/numpy stack
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
WAIT_POLICY = "PASSIVE"


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    source: str  # "--threads", "OMP_NUM_THREADS" or "affinity"
    limit: int  # the most threads this process (rank) may use


def _cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole CPUs of a cgroup CPU quota (v2 cpu.max or v1 cfs_quota_us), rounded up; None without one."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return max(math.ceil(int(text[0]) / int(text[1])), 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return max(math.ceil(quota / period), 1)
    except (OSError, ValueError):
        pass
    return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, lowered to the cgroup CPU quota if there is one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(min(cpus, quota) if quota else cpus, 1)


def _env_count(value: str | None) -> int | None:
    """OMP_NUM_THREADS as a count: '4' -> 4, '4,2' (nested levels) -> 4; None if unset or not positive."""
    if not value:
        return None
    try:
        count = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return count if count > 0 else None


def choose_threads(
    option: int | None = None,
    environ: Mapping[str, str] | None = None,
    available: int | None = None,
    ranks: int = 1,
) -> ThreadChoice:
    """The thread count per process (rank) by the rule of this module; ``ranks`` processes share the CPUs."""
    if option is not None and option < 1:
        raise ValueError(f"--threads must be at least 1, got {option}")
    environ = os.environ if environ is None else environ
    available = available_cpus() if available is None else available
    limit = max(available // max(ranks, 1), 1)
    if option is not None:
        return ThreadChoice(min(option, limit), "--threads", limit)
    from_env = _env_count(environ.get(ENV_THREADS))
    if from_env is not None:
        return ThreadChoice(min(from_env, limit), ENV_THREADS, limit)
    return ThreadChoice(limit, "affinity", limit)


def thread_environment(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables :func:`configure_threads` sets: the count for every runtime, and the passive wait
    policy unless the environment already chose one."""
    environ = os.environ if environ is None else environ
    env = {name: str(threads) for name in THREAD_ENV_VARS}
    if WAIT_POLICY and WAIT_POLICY_ENV not in environ:
        env[WAIT_POLICY_ENV] = WAIT_POLICY
    return env


def configure_threads(
    option: int | None = None, ranks: int = 1, use_torch: bool = True, available: int | None = None
) -> ThreadChoice:
    """Choose the thread count and apply it to this process (and the processes it starts).

    Sets the environment (read by OpenMP, MKL and OpenBLAS when they load, and inherited by torchrun's
    workers), then the runtimes already loaded: torch's intra- and inter-op threads (``use_torch``, or
    whenever torch is imported already) and OpenBLAS."""
    choice = choose_threads(option, available=available, ranks=ranks)
    os.environ.update(thread_environment(choice.threads))
    if use_torch or "torch" in sys.modules:
        import torch

        torch.set_num_threads(choice.threads)
        try:  # allowed once, before any inter-op work; a second command in one process keeps the first
            torch.set_num_interop_threads(choice.threads)
        except RuntimeError:
            pass
    for setter, _ in _openblas_controls():
        setter(choice.threads)
    return choice


def _openblas_controls() -> list[tuple[object, object]]:
    """(set_num_threads, get_num_threads) of every OpenBLAS loaded in this process."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    paths = {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower()}
    controls = []
    for path in sorted(p for p in paths if ".so" in p):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    controls.append((setter, getter))
                    break
            else:
                continue
            break
    return controls


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """OpenBLAS on one thread inside the block (the ~100x100 matrices of basis generation: 10x slower on
    a busy machine when spread over the cores, 19 s instead of 2 s for Si, measured)."""
    controls = [(setter, getter()) for setter, getter in _openblas_controls()]
    for setter, _ in controls:
        setter(1)
    try:
        yield
    finally:
        for setter, previous in controls:
            setter(previous)
