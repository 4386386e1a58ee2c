"""Test configuration shared by the whole suite.

The AiiDA profile is chosen by ``AIIDA_SLEM_TEST_BACKEND``:
- ``embedded`` (default): SQLite storage + AiiDA's built-in ZeroMQ broker, no services needed;
- ``psql``: PostgreSQL storage (a fresh database on the local server) + RabbitMQ on localhost.
"""

from __future__ import annotations

import os
import uuid

import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

BACKEND = os.environ.get("AIIDA_SLEM_TEST_BACKEND", "embedded")


def _local_postgres_storage(tmp_path_factory) -> dict:
    """A new database on the PostgreSQL server already running on localhost (trust auth)."""
    from aiida.manage.external.postgres import Postgres

    dbinfo = {
        "host": os.environ.get("PGHOST", "localhost"),
        "port": int(os.environ.get("PGPORT", 5432)),
        "user": os.environ.get("PGUSER", "postgres"),
    }
    postgres = Postgres(interactive=False, quiet=True, dbinfo=dbinfo)
    if not postgres.is_connected:
        pytest.exit(f"AIIDA_SLEM_TEST_BACKEND=psql but PostgreSQL is not reachable at {dbinfo}", returncode=3)
    user, password, name = "aiida_slem_test", "aiida_slem_test", f"aiida_slem_test_{uuid.uuid4().hex[:12]}"
    if not postgres.dbuser_exists(user):
        postgres.create_dbuser(user, password, "CREATEDB")
    # the server's template locale (en_US.UTF-8) is not installed here; C.UTF-8 always is
    postgres.execute(
        f'CREATE DATABASE "{name}" OWNER "{user}" ENCODING \'UTF8\' '
        "LC_COLLATE='C.UTF-8' LC_CTYPE='C.UTF-8' TEMPLATE=template0"
    )
    return {
        "database_engine": "postgresql_psycopg",
        "database_hostname": dbinfo["host"],
        "database_port": dbinfo["port"],
        "database_name": name,
        "database_username": user,
        "database_password": password,
        "repository_uri": tmp_path_factory.mktemp("repository").as_uri(),
    }


@pytest.fixture(scope="session", autouse=True)
def aiida_profile(aiida_config, aiida_profile_factory, tmp_path_factory):
    """Override of aiida's fixture: a profile with a broker, so daemon tests can run on either back end."""
    if BACKEND == "psql":
        kwargs = {
            "storage_backend": "core.psql_dos",
            "storage_config": _local_postgres_storage(tmp_path_factory),
            "broker_backend": "core.rabbitmq",
        }
    elif BACKEND == "embedded":
        kwargs = {"storage_backend": "core.sqlite_dos", "broker_backend": "core.zeromq"}
    else:
        raise pytest.UsageError(f"AIIDA_SLEM_TEST_BACKEND must be 'embedded' or 'psql', not {BACKEND!r}")
    with aiida_profile_factory(aiida_config, **kwargs) as profile:
        profile.set_option("warnings.rabbitmq_version", False)
        # stopping the daemon at teardown takes longer than the 2 s default on 2 busy cores
        profile.set_option("daemon.timeout", 60)
        yield profile


@pytest.fixture(scope="session")
def aiida_backend_name(aiida_profile) -> str:
    return f"{aiida_profile.storage_backend}+{aiida_profile.process_control_backend}"


def _wait_for_rabbitmq_process_queue(profile, timeout: float = 180.0) -> None:
    """RabbitMQ refuses (NO_ROUTE) a task sent before a daemon worker has declared the process queue,
    which happens on a busy machine right after the daemon starts."""
    import shutil
    import subprocess
    import time

    if profile.process_control_backend != "core.rabbitmq" or shutil.which("rabbitmqctl") is None:
        return
    queue = f"aiida-{profile.uuid}.process.queue"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True)
        if queue in listing.stdout.split():
            return
        time.sleep(1.0)
    pytest.fail(f"no daemon worker declared {queue} within {timeout:.0f} s")


@pytest.fixture
def submit_and_await(submit_and_await, aiida_profile):
    """aiida's fixture, but only once the daemon can actually receive the task.

    The queue check alone is not enough: right after an earlier test stopped or restarted the daemon,
    RabbitMQ can still list the old worker's queue and then drop it, and the send fails with NO_ROUTE
    (seen once in a full run on PostgreSQL + RabbitMQ). Such a send is retried once the queue is back;
    the node the failed send created is never started, so it does not disturb the test."""
    from kiwipy import UnroutableError

    def factory(*args, **kwargs):
        for attempt in range(3):
            _wait_for_rabbitmq_process_queue(aiida_profile)
            try:
                return submit_and_await(*args, **kwargs)
            except UnroutableError:
                if attempt == 2:
                    raise
                import time

                time.sleep(2.0)
        raise AssertionError("unreachable")

    return factory


@pytest.fixture
def daemon_accepts_tasks(started_daemon_client, aiida_profile):
    """A running daemon that can already receive tasks (see _wait_for_rabbitmq_process_queue)."""
    _wait_for_rabbitmq_process_queue(aiida_profile)
    return started_daemon_client


@pytest.fixture(scope="session")
def restart_broker_with_daemon(aiida_profile, run_aiida_broker_service):
    """Call it while the daemon is stopped: on the embedded profile it restarts the ZeroMQ broker service,
    as ``verdi daemon stop/start`` does for a user, whose daemon supervises its broker. RabbitMQ runs on
    its own and is left alone.

    Why: aiida's test fixture runs one broker for the whole session, outliving daemon restarts, and aiida-core
    2.9.4's broker sometimes keeps the unacknowledged tasks of a stopped worker assigned to it: it finds dead
    workers by pinging them when a disconnect event arrives, and the ping can still succeed while the closed
    worker's pipe is being torn down. Those processes then never resume (a pipeline test waited 1200 s in CI;
    a standalone reproduction lost the held tasks in 1 of 10 worker stops). A restarted broker moves every
    unacknowledged task back to its queue, which is what a user's ``verdi daemon restart`` gets."""
    import signal
    import subprocess
    import sys
    import time

    from aiida.manage import get_manager

    started: list[subprocess.Popen] = []

    def restart(timeout: float = 60.0) -> None:
        if aiida_profile.process_control_backend != "core.zeromq":
            return
        manager = get_manager()
        broker = manager.get_broker()
        if not (hasattr(broker, "_service_dir") and hasattr(broker, "_get_service_pid")):
            import aiida

            pytest.fail(f"aiida-core {aiida.__version__}'s ZeroMQ broker no longer has _service_dir and "
                        "_get_service_pid (private, read as of 2.9.4): update restart_broker_with_daemon")
        service_dir = broker._service_dir
        pid = broker._get_service_pid()
        if pid is not None:
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while broker.check_service_reachable() or (service_dir / "broker.pid").exists():
            if time.monotonic() > deadline:
                pytest.fail(f"the ZeroMQ broker service (pid {pid}) did not stop within {timeout:.0f} s")
            time.sleep(0.1)
        # this process's communicator still points at the old service's socket
        manager.reset_runner()
        manager.reset_broker()
        process = subprocess.Popen(
            [sys.executable, "-m", "aiida.brokers.zeromq.service", "--service-dir", str(service_dir)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        broker = manager.get_broker()
        while not broker.check_service_reachable():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the restarted ZeroMQ broker did not come up (exit code {process.poll()})")
            time.sleep(0.1)

    yield restart
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
