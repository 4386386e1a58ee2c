"""The suite really runs on the storage and broker it claims, and a real daemon executes work."""

from __future__ import annotations

import os

from aiida import orm


def test_profile_uses_requested_backends(aiida_profile):
    backend = os.environ.get("AIIDA_SLEM_TEST_BACKEND", "embedded")
    expected = {"embedded": ("core.sqlite_dos", "core.zeromq"), "psql": ("core.psql_dos", "core.rabbitmq")}[
        backend
    ]
    assert (aiida_profile.storage_backend, aiida_profile.process_control_backend) == expected


def test_daemon_runs_a_submitted_workchain(submit_and_await, aiida_code_installed):
    from aiida.workflows.arithmetic.multiply_add import MultiplyAddWorkChain

    code = aiida_code_installed(
        default_calc_job_plugin="core.arithmetic.add", filepath_executable="/bin/bash"
    )
    node = submit_and_await(MultiplyAddWorkChain, x=orm.Int(2), y=orm.Int(3), z=orm.Int(4), code=code)
    assert node.is_finished_ok, node.exit_status
    assert node.outputs.result.value == 10
    # a CalcJob ran through the scheduler under the daemon and left its retrieved files
    # (called_descendants has no defined order: pick the CalcJob, not the multiply calcfunction)
    calc = next(n for n in node.called_descendants if isinstance(n, orm.CalcJobNode))
    assert "aiida.out" in calc.outputs.retrieved.base.repository.list_object_names()
