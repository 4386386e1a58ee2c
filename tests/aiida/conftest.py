"""Fixtures of the AiiDA-side tests; only the tests under ``tests/aiida`` get an AiiDA profile.

The profile is chosen by ``AIIDA_SLEM_TEST_BACKEND``:
- ``embedded`` (default): SQLite storage + AiiDA's built-in ZeroMQ broker, no services needed;
- ``psql``: PostgreSQL storage (a fresh database on the local server) + RabbitMQ on localhost.

aiida's pytest fixtures are imported into this conftest rather than registered with ``pytest_plugins``: a
plugin's autouse fixtures (``aiida_config``, ``aiida_profile``, the broker service) would apply to the whole
session and give ``tests/slem`` a profile too. Imported here, they apply to this folder only.

Also here: real codes on localhost, the Debian pseudopotential family, the DeePTB Si64 frames as
``DatasetData``, a localhost ``slem`` code and Computers with the Slurm and PBSPro schedulers for
submit-script checks. Plain helpers (structures, small basis and frame files, model configs) are in
``aiida_test_helpers.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.tools.pytest_fixtures import *  # noqa: F403  (scoped to tests/aiida, see above)
from aiida.tools.pytest_fixtures import submit_and_await as aiida_submit_and_await  # noqa: F401  (wrapped below)
from aiida_test_helpers import (
    FIXTURES,
    SI64_ARCHIVE,
    SI_LATTICE,
    SI_UPF,
    dataset_node,
    si8_structure,
    slem_executable,
)

from aiida_slem.data.model import SlemModelData
from aiida_slem.pseudos import FAMILY_LABEL
from slem.data.frame import Frame

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
def submit_and_await(aiida_submit_and_await, aiida_profile):  # noqa: F811  (aiida's fixture, by its alias)
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
                return aiida_submit_and_await(*args, **kwargs)
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


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _executable(name: str) -> str:
    path = shutil.which(name) if name != "slem" else str(Path(sys.executable).parent / "slem")
    if not path or not Path(path).exists():
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="module")
def module_codes(aiida_profile, tmp_path_factory, request) -> dict:
    """Serial pw.x, pp.x and slem on a localhost computer of the test module (labels are unique per
    profile, and the profile lives as long as the session)."""
    from aiida_slem.cli.setup_pseudos import ensure_pseudo_family

    module = request.module.__name__.rsplit(".", 1)[-1]
    computer = orm.Computer(
        label=f"{module}-{tmp_path_factory.getbasetemp().name}",
        hostname="localhost",
        transport_type="core.local",
        scheduler_type="core.direct",
        workdir=str(tmp_path_factory.mktemp("workdir")),
    ).store()
    computer.configure()
    computer.set_minimum_job_poll_interval(0.0)
    computer.set_default_mpiprocs_per_machine(1)
    ensure_pseudo_family()
    codes = {}
    for name, executable, plugin in (
        ("pw", "pw.x", "quantumespresso.pw"),
        ("pp", "pp.x", "quantumespresso.pp"),
        ("slem", "slem", "slem.project"),
    ):
        codes[name] = orm.InstalledCode(
            label=name,
            computer=computer,
            filepath_executable=_executable(executable),
            default_calc_job_plugin=plugin,
            prepend_text="export OMP_NUM_THREADS=1",
        ).store()
    return codes


@pytest.fixture
def localhost(aiida_localhost):
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    aiida_localhost.set_default_mpiprocs_per_machine(1)
    return aiida_localhost


@pytest.fixture
def codes(aiida_code_installed, localhost) -> dict[str, orm.InstalledCode]:
    """InstalledCodes for pw.x, pp.x and slem, serial and single-threaded (2 shared cores)."""
    threads = "export OMP_NUM_THREADS=1"
    return {
        "pw": aiida_code_installed(
            label="pw",
            default_calc_job_plugin="quantumespresso.pw",
            filepath_executable=_executable("pw.x"),
            prepend_text=threads,
        ),
        "pp": aiida_code_installed(
            label="pp",
            default_calc_job_plugin="quantumespresso.pp",
            filepath_executable=_executable("pp.x"),
            prepend_text=threads,
        ),
        "slem": aiida_code_installed(
            label="slem",
            default_calc_job_plugin="slem.project",
            filepath_executable=_executable("slem"),
            prepend_text=threads,
        ),
    }


@pytest.fixture
def pseudo_family(aiida_profile):
    """The family ``aiida-slem setup`` installs, created the same way."""
    from aiida_pseudo.groups.family import CutoffsPseudoPotentialFamily

    from aiida_slem.cli.setup_pseudos import ensure_pseudo_family

    ensure_pseudo_family()
    return orm.QueryBuilder().append(CutoffsPseudoPotentialFamily, filters={"label": FAMILY_LABEL}).one()[0]


@pytest.fixture
def si_upf(aiida_profile):
    from aiida_pseudo.data.pseudo import UpfData

    return UpfData(SI_UPF)


@pytest.fixture
def si8():
    return si8_structure()


@pytest.fixture
def si2():
    from ase.build import bulk

    return orm.StructureData(ase=bulk("Si", "diamond", a=SI_LATTICE))


@pytest.fixture
def generate_calc_job(tmp_path):
    """Run ``prepare_for_submission`` of a CalcJob class on ``inputs`` and return (folder path, CalcInfo)."""
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    def factory(process_class, inputs: dict):
        folder_path = tmp_path / "sandbox"
        folder_path.mkdir(exist_ok=True)
        runner = get_manager().get_runner()
        process = instantiate_process(runner, process_class, **inputs)
        calc_info = process.prepare_for_submission(Folder(str(folder_path)))
        return folder_path, calc_info

    return factory


@pytest.fixture(scope="session")
def si64_frames(tmp_path_factory) -> list[Frame]:
    """The DeePTB Si64 frame (64 atoms, H and S, no D), read with slem's DeePTB reader."""
    from slem.data.deeptb import read_deeptb

    if not SI64_ARCHIVE.is_file():
        pytest.skip(f"{SI64_ARCHIVE} is missing")
    root = tmp_path_factory.mktemp("deeptb_si64")
    with tarfile.open(SI64_ARCHIVE) as archive:
        archive.extractall(root, filter="data")
    return read_deeptb(root, basis={"Si": "1s1p"})


@pytest.fixture
def si64_dataset(aiida_profile, si64_frames, tmp_path):
    """Two copies of the Si64 frame: one to train on, one to validate on."""
    frame = si64_frames[0]
    return dataset_node(tmp_path / "si64.h5", [frame, frame], {"train": [0], "validation": [1]})


@pytest.fixture
def si64_dataset_two_train(aiida_profile, si64_frames, tmp_path):
    """Three copies of the Si64 frame: two to train on (a batch of 2), one to validate on."""
    frame = si64_frames[0]
    return dataset_node(tmp_path / "si64x3.h5", [frame] * 3, {"train": [0, 1], "validation": [2]})


@pytest.fixture
def si_model(aiida_profile, tmp_path) -> SlemModelData:
    """A real (untrained, seeded) SLEM model file for Si in the 1s1p basis."""
    import torch

    from slem.model import SlemConfig, build_model, save_model

    torch.manual_seed(0)
    config = SlemConfig(
        species=["Si"],
        basis={"Si": "1s1p"},
        r_cut={"Si": 2.6},
        n_layers=1,
        hidden_irreps="4x0e+4x1o",
        latent_dim=8,
        latent_hidden=[8],
        n_radial=4,
        overlap_hidden=[8],
    )
    model = build_model(config)
    save_model(tmp_path / "model.pt", model)
    n_params = sum(p.numel() for p in model.parameters())
    return SlemModelData(
        tmp_path / "model.pt",
        config={"species": ["Si"], "basis": {"Si": "1s1p"}, "r_cut": {"Si": 2.6}, "n_params": n_params},
    ).store()


@pytest.fixture
def slem_code(aiida_code_installed, aiida_localhost):
    """``slem`` on localhost (direct scheduler), one thread: the machine's cores are shared."""
    aiida_localhost.set_minimum_job_poll_interval(0.0)
    aiida_localhost.set_default_mpiprocs_per_machine(1)
    return aiida_code_installed(
        label="slem-train",
        default_calc_job_plugin="slem.train",
        filepath_executable=slem_executable(),
        prepend_text="export OMP_NUM_THREADS=1",
    )


@pytest.fixture
def scheduler_code(aiida_computer, aiida_code_installed):
    """Factory: a ``slem`` code on a core.local Computer with the given scheduler (for dry runs only)."""

    def factory(scheduler_type: str) -> orm.InstalledCode:
        computer = aiida_computer(
            label=f"test-{scheduler_type.replace('.', '-')}", scheduler_type=scheduler_type
        )
        computer.configure()
        code = orm.InstalledCode(
            computer=computer,
            filepath_executable="/opt/slem/bin/slem",
            default_calc_job_plugin="slem.train",
            label=f"slem-{scheduler_type}",
        )
        return code.store()

    return factory


# --- process handler unit tests (aiida-quantumespresso's ``generate_workchain`` style) -------------------


@pytest.fixture
def generate_workchain():
    """Instantiate a WorkChain class with ``inputs``, not run: call its steps and handlers directly."""
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    def factory(process_class, inputs: dict):
        return instantiate_process(get_manager().get_runner(), process_class, **inputs)

    return factory


@pytest.fixture
def handler_dataset(aiida_profile, tmp_path):
    """A stored one-frame Si2 ``DatasetData`` (H and S, 1s1p): valid ``slem.train`` inputs."""
    import numpy as np

    from aiida_slem.data.dataset import DatasetData
    from slem.data.frame import frame_from_blocks, write_frames

    rng = np.random.default_rng(0)
    keys = [(0, 0, 0, 0, 0), (1, 1, 0, 0, 0), (0, 1, 0, 0, 0), (1, 0, 0, 0, 0)]
    blocks = {op: {key: rng.normal(size=(4, 4)) for key in keys} for op in ("H", "S")}
    positions = np.array([[0.0, 0.0, 0.0], [1.3575, 1.3575, 1.3575]])
    frame = frame_from_blocks(
        ["Si", "Si"], positions, np.eye(3) * 5.43, [True] * 3, {"Si": "1s1p"}, blocks, {"basis_label": "SZ"}
    )
    return DatasetData(write_frames(tmp_path / "handler_dataset.h5", [frame])).store()


@pytest.fixture
def generate_train_workchain(generate_workchain, aiida_localhost, handler_dataset):
    """A ``SlemTrainWorkChain`` after its ``setup`` step, for ``training`` settings and ``options``."""
    from aiida_slem.workflows.train import SlemTrainWorkChain

    code = orm.InstalledCode(
        computer=aiida_localhost,
        filepath_executable="/usr/bin/slem",
        default_calc_job_plugin="slem.train",
        label="slem-handler-tests",
    )

    def factory(training: dict | None = None, options: dict | None = None, **train_inputs):
        config = {
            "operators": ["H", "S"],
            "model": {"n_layers": 1, "hidden_irreps": "4x0e+2x1o", "latent_dim": 8, "latent_hidden": [8]},
            "training": {"max_steps": 10, **(training or {})},
        }
        inputs = {
            "train": {
                "code": code.store() if not code.is_stored else code,
                "dataset": handler_dataset,
                "config": orm.Dict(config),
                "metadata": {"options": {"resources": {"num_machines": 1}, **(options or {})}},
                **train_inputs,
            }
        }
        process = generate_workchain(SlemTrainWorkChain, inputs)
        process.setup()
        return process

    return factory


@pytest.fixture
def generate_failed_calculation(aiida_localhost):
    """A stored, finished CalcJobNode of ``entry_point`` with ``exit_code``, as a BaseRestartWorkChain
    child; ``step`` adds the ``metrics`` output (the step of its last checkpoint), and a ``remote_folder``."""
    from aiida.common.links import LinkType
    from aiida.plugins import CalculationFactory
    from plumpy import ProcessState

    def factory(entry_point: str, exit_code, step: int | None = None):
        process_class = CalculationFactory(entry_point)
        node = orm.CalcJobNode(computer=aiida_localhost, process_type=f"aiida.calculations:{entry_point}")
        node.set_process_label(process_class.__name__)
        node.set_process_state(ProcessState.FINISHED)
        node.set_exit_status(exit_code.status)
        node.set_exit_message(exit_code.message.format_map(_Placeholders()))
        node.store()
        remote = orm.RemoteData(computer=aiida_localhost, remote_path="/tmp/slem-handler-test")
        outputs = {"remote_folder": remote}
        if step is not None:
            outputs["metrics"] = orm.Dict({"state": "stopped", "step": step})
        for label, output in outputs.items():
            output.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label=label)
            output.store()
        return node

    return factory


class _Placeholders(dict):
    """Fills an exit message's ``{fields}`` with a stand-in, as the parser would with real text."""

    def __missing__(self, key: str) -> str:
        return f"<{key} of the test>"
