"""Run a process in this interpreter so that Ctrl-C or SIGTERM ends it cleanly (``submit_pipeline.py --run``).

AiiDA's own ``run`` answers a signal by killing the top process only: its runner has no broker to reach the
children, which stayed Waiting forever with their pw.x still running (once also "failed: None", once a six
minute hang). A process run in this interpreter cannot be resumed by anything else, so here a
signal stops the event loop between two steps, and :func:`abandon` then settles the tree in the database
directly: the scheduler jobs still running are cancelled, every unfinished process is marked killed, and
finished work is kept and listed. A second signal stops at once.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from aiida import orm
from aiida.engine import ProcessBuilder, utils
from aiida.manage import get_manager
from plumpy import ProcessState

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Abandoned:
    """What :func:`abandon` did to a process tree."""

    root: int
    killed: list[int] = field(default_factory=list)  # unfinished processes, marked killed
    cancelled_jobs: list[tuple[int, str]] = field(default_factory=list)  # (CalcJob PK, scheduler job id)
    finished: list[int] = field(default_factory=list)  # kept as they are
    errors: list[str] = field(default_factory=list)  # jobs that could not be cancelled, and why

    def lines(self, signum: int) -> list[str]:
        name = signal.Signals(signum).name
        out = [f"interrupted ({name}): pipeline <{self.root}> stopped"]
        if self.cancelled_jobs:
            jobs = ", ".join(f"<{pk}> job {job}" for pk, job in self.cancelled_jobs)
            out.append(f"  cancelled scheduler jobs: {jobs}")
        out.append(f"  marked killed: {_pks(self.killed)}")
        out.append(f"  finished and kept: {_pks(self.finished)}")
        out.extend(f"  could not cancel: {error}" for error in self.errors)
        out.append(
            "  nothing here can be resumed (it ran in this process): rerun the command (with caching on, "
            "as 'aiida-slem setup' sets it, the finished pw.x and projection jobs are reused), or delete the "
            f"run with 'verdi process delete {self.root}'. For long runs use --submit with 'verdi daemon "
            "start': the daemon keeps going when this terminal closes, and Ctrl-C then only stops watching."
        )
        return out


def _pks(pks: list[int]) -> str:
    return ", ".join(f"<{pk}>" for pk in pks) or "none"


def _cancel_job(node: orm.CalcJobNode) -> str | None:
    job_id = node.get_job_id()
    if job_id is None:
        return None
    with node.computer.get_authinfo(node.user).get_transport() as transport:
        scheduler = node.computer.get_scheduler()
        scheduler.set_transport(transport)
        scheduler.kill_job(job_id)
    return job_id


def abandon(root: orm.ProcessNode, why: str) -> Abandoned:
    """Cancel the running scheduler jobs under ``root`` and mark its unfinished processes killed."""
    report = Abandoned(root.pk)
    # called_descendants lists callers before callees: reversed, a parent is never settled before its child
    for node in reversed([root, *root.called_descendants]):
        if node.is_terminated:
            report.finished.append(node.pk)
            continue
        if isinstance(node, orm.CalcJobNode):
            try:
                job = _cancel_job(node)
                if job is not None:
                    report.cancelled_jobs.append((node.pk, job))
            except Exception as exc:  # noqa: BLE001 - the rest of the tree must still be settled
                report.errors.append(f"<{node.pk}> job {node.get_job_id()}: {exc}")
        node.set_process_state(ProcessState.KILLED)
        node.set_process_status(why)
        node.delete_checkpoint()
        node.seal()
        report.killed.append(node.pk)
    report.finished.sort()
    report.killed.sort()
    return report


class Interrupted(Exception):
    """The run was stopped by a signal; ``report`` says what was cancelled, killed and kept."""

    def __init__(self, signum: int, report: Abandoned) -> None:
        super().__init__("\n".join(report.lines(signum)))
        self.signum = signum
        self.report = report


def run_interruptible(builder: ProcessBuilder) -> orm.ProcessNode:
    """Run ``builder`` to the end in this interpreter and return its node; raise :class:`Interrupted` after a
    SIGINT or SIGTERM, with the tree settled by :func:`abandon`."""
    runner = get_manager().create_runner(communicator=None)  # as aiida's run_get_node: no broker needed
    received: list[int] = []

    def on_signal(signum, _frame):
        received.append(signum)
        if len(received) > 1:
            raise KeyboardInterrupt  # a second signal: do not wait for the running step
        runner.loop.call_soon_threadsafe(runner.loop.stop)  # the step in progress finishes first

    with utils.loop_scope(runner.loop):
        process = runner.instantiate_process(builder)
        previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        try:
            for signum in SIGNALS:
                signal.signal(signum, on_signal)
            process.execute()
        except (RuntimeError, KeyboardInterrupt):
            if not received:
                raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if received:
        _rollback()
        why = f"killed: the interpreter running it received {signal.Signals(received[0]).name}"
        raise Interrupted(received[0], abandon(process.node, why))
    return process.node


def _rollback() -> None:
    """A second signal may have struck inside a database call: start the clean-up from a fresh transaction."""
    try:
        get_manager().get_profile_storage().get_session().rollback()
    except Exception:  # noqa: BLE001 - storage without a session has nothing to roll back
        pass
