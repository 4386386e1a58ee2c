"""Ctrl-C and SIGTERM of ``verdi run submit_pipeline.py --run`` (issue #18, item 9): the scheduler jobs are
cancelled, nothing is left Waiting, and the user is told which PKs were killed and kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from aiida import orm
from aiida.common.links import LinkType
from plumpy import ProcessState

from aiida_slem.interrupt import abandon

ROOT = Path(__file__).resolve().parents[2]


def _job_ids(aiida_path: Path) -> list[int]:
    """Scheduler job ids recorded so far in the profile under ``aiida_path``."""
    probe = (
        "from aiida import load_profile, orm; load_profile(); "
        "ids = orm.QueryBuilder().append(orm.CalcJobNode, project='attributes.job_id').all(flat=True); "
        "print(' '.join(str(i) for i in ids if i))"
    )
    return [int(i) for i in _run([sys.executable, "-c", probe], aiida_path).stdout.split()]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        shell = psutil.Process(pid)
        return [shell, *shell.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _waiting(node: orm.ProcessNode) -> orm.ProcessNode:
    node.set_process_state(ProcessState.WAITING)
    return node


def test_abandon_cancels_the_job_and_settles_the_tree(aiida_profile, aiida_localhost):
    """A Waiting workflow with a finished and a running CalcJob, whose job is a real process on localhost."""
    sleeper = subprocess.Popen(["sleep", "600"])
    root = _waiting(orm.WorkflowNode()).store()
    done = orm.CalcJobNode(computer=aiida_localhost)
    done.set_process_state(ProcessState.FINISHED)
    done.set_exit_status(0)
    running = _waiting(orm.CalcJobNode(computer=aiida_localhost))
    for child in (done, running):
        child.base.links.add_incoming(root, LinkType.CALL_CALC, "step")
        child.store()
    running.set_job_id(str(sleeper.pid))
    done.seal()

    report = abandon(root, "killed: test")

    assert sleeper.wait(timeout=30) != 0  # the scheduler's kill ended it
    assert report.cancelled_jobs == [(running.pk, str(sleeper.pid))] and report.errors == []
    assert report.killed == sorted([root.pk, running.pk]) and report.finished == [done.pk]
    for node in (root, running):
        assert node.process_state == ProcessState.KILLED and node.is_sealed
        assert node.process_status == "killed: test"
    assert done.process_state == ProcessState.FINISHED and done.exit_status == 0


def _run(args, aiida_path: Path, **kwargs):
    env = {**os.environ, "AIIDA_PATH": str(aiida_path)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_a_run_cancels_its_pw_jobs_and_kills_its_processes(tmp_path, signum):
    """The real pipeline, stopped while its pw.x MD jobs run; before, they stayed Waiting for ever."""
    assert _run(["aiida-slem", "setup"], tmp_path).returncode == 0
    log = tmp_path / "log.txt"
    env = {**os.environ, "AIIDA_PATH": str(tmp_path)}
    with open(log, "w") as out:
        run = subprocess.Popen(
            ["verdi", "run", str(ROOT / "submit_pipeline.py"), "--run"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )
        # wait until the MD jobs run under the direct scheduler (their job id is the PID of the job's shell):
        # on a loaded machine the launch report comes long before a job reaches the scheduler
        deadline = time.monotonic() + 300
        while len(running := _job_ids(tmp_path)) < 2:
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        processes = [p for pid in running for p in _tree(pid)]  # the shells and their pw.x
        run.send_signal(signum)
        assert run.wait(timeout=180) == 128 + signum
    text = log.read_text()
    name = signal.Signals(signum).name
    root = int(re.search(rf"interrupted \({name}\): pipeline <(\d+)> stopped", text).group(1))
    cancelled = {int(job) for job in re.findall(r"<\d+> job (\d+)", text)}
    assert cancelled and cancelled <= set(_job_ids(tmp_path)), text  # a job may also have ended by itself
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert alive == [], f"still running after the interrupt: {alive}"
    assert f"verdi process delete {root}" in text and "--submit" in text

    probe = (
        "from aiida import load_profile, orm; load_profile(); "
        f"root = orm.load_node({root}); "
        "print(sorted({n.process_state.value for n in [root, *root.called_descendants]}))"
    )
    states = _run([sys.executable, "-c", probe], tmp_path)
    assert states.stdout.strip() == "['finished', 'killed']", states.stdout + states.stderr
