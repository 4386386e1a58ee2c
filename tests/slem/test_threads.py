"""slem/threads.py: the thread count from --threads, then OMP_NUM_THREADS, then the affinity mask; never more
than the CPUs the process may use; and the three commands that apply it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from slem import threads as slem_threads
from slem.threads import ThreadChoice, _cgroup_cpu_quota, choose_threads, thread_environment


@pytest.mark.parametrize(
    ("option", "env", "available", "ranks", "expected"),
    [
        (3, {"OMP_NUM_THREADS": "2"}, 8, 1, ThreadChoice(3, "--threads", 8)),  # the option first
        (None, {"OMP_NUM_THREADS": "2"}, 8, 1, ThreadChoice(2, "OMP_NUM_THREADS", 8)),  # then the environment
        (None, {}, 8, 1, ThreadChoice(8, "affinity", 8)),  # then the affinity mask
        (None, {"OMP_NUM_THREADS": "4,2"}, 8, 1, ThreadChoice(4, "OMP_NUM_THREADS", 8)),  # nested: outer
        (None, {"OMP_NUM_THREADS": "0"}, 8, 1, ThreadChoice(8, "affinity", 8)),  # not a count: ignored
        (None, {"OMP_NUM_THREADS": "many"}, 8, 1, ThreadChoice(8, "affinity", 8)),
        (None, {"OMP_NUM_THREADS": ""}, 8, 1, ThreadChoice(8, "affinity", 8)),
        (16, {}, 2, 1, ThreadChoice(2, "--threads", 2)),  # never above the mask
        (None, {"OMP_NUM_THREADS": "64"}, 2, 1, ThreadChoice(2, "OMP_NUM_THREADS", 2)),
        (None, {}, 8, 2, ThreadChoice(4, "affinity", 4)),  # data-parallel ranks share the CPUs
        (4, {}, 8, 4, ThreadChoice(2, "--threads", 2)),
        (None, {}, 2, 4, ThreadChoice(1, "affinity", 1)),  # at least one
        (None, {}, 1, 1, ThreadChoice(1, "affinity", 1)),
    ],
)
def test_choice_by_source(option, env, available, ranks, expected):
    assert choose_threads(option, environ=env, available=available, ranks=ranks) == expected


def test_zero_threads_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        choose_threads(0, environ={}, available=2)


def test_affinity_mask_bounds_every_source(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(slem_threads, "_cgroup_cpu_quota", lambda: None)
    assert slem_threads.available_cpus() == 1
    assert choose_threads(None, environ={}).threads == 1
    assert choose_threads(8, environ={}).threads == 1
    assert choose_threads(None, environ={"OMP_NUM_THREADS": "8"}).threads == 1


def test_cgroup_quota_lowers_the_count(monkeypatch, tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # v2: 1.5 CPUs -> 2
    assert _cgroup_cpu_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")  # v1: 1 CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpu_quota(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_cpu_quota(tmp_path) is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(slem_threads, "_cgroup_cpu_quota", lambda: 3)
    assert slem_threads.available_cpus() == 3


def test_environment_keeps_a_chosen_wait_policy():
    env = thread_environment(3, environ={})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in thread_environment(3, environ={"OMP_WAIT_POLICY": "active"})


CHILD = """
import json, os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # this process may use one CPU
from slem.threads import configure_threads
choice = configure_threads(int(sys.argv[1]))
import torch
print(json.dumps({"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
                  "source": choice.source, "policy": os.environ.get("OMP_WAIT_POLICY"),
                  "omp": os.environ["OMP_NUM_THREADS"]}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_configure_in_a_fresh_process_applies_the_mask():
    """torch, OpenMP's environment and the wait policy, set before torch loads, as the commands do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_"))}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, "8"], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"threads": 1, "interop": 1, "source": "--threads", "policy": "PASSIVE", "omp": "1"}


@pytest.fixture
def recorded(monkeypatch):
    """configure_threads replaced by a recorder: the commands' calls, without touching this process."""
    calls = []

    def record(option=None, ranks=1, use_torch=True, available=None):
        calls.append({"option": option, "ranks": ranks, "use_torch": use_torch})
        return ThreadChoice(1, "test", 1)

    monkeypatch.setattr(slem_threads, "configure_threads", record)
    return calls


def test_train_applies_the_rule_first(recorded, tmp_path, monkeypatch):
    from slem.cli.train import train

    for name in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"operators": ["H"], "output_dir": "run", "dataset": {"path": "none.h5"}}))
    result = CliRunner().invoke(train, [str(config), "--threads", "3"])
    assert result.exit_code == 2  # config_error, after the threads were set
    assert recorded == [{"option": 3, "ranks": 1, "use_torch": True}]
    recorded.clear()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    CliRunner().invoke(train, [str(config)])  # a torchrun worker: the CPUs are shared by the local ranks
    assert recorded == [{"option": None, "ranks": 2, "use_torch": True}]


def test_predict_and_project_apply_the_rule(recorded, tmp_path):
    from slem.cli.predict import predict
    from slem.cli.project import project

    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    out = str(tmp_path / "out.h5")
    result = CliRunner().invoke(predict, [str(junk), str(junk), "-o", out, "--threads", "2"])
    assert result.exit_code != 0
    assert recorded == [{"option": 2, "ranks": 1, "use_torch": True}]
    recorded.clear()
    args = ["--potential", "v.dat", "--basis", "b.h5", "-o", str(tmp_path / "f.h5")]
    result = CliRunner().invoke(project, args)  # neither --scf-dir nor --xml: refused after the threads
    assert result.exit_code == 2
    assert recorded == [{"option": None, "ranks": 1, "use_torch": False}]  # projection never loads torch
