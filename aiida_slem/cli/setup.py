"""``aiida-slem setup``: everything a user needs on this machine, created once, unchanged on reruns."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from aiida_slem.cli.report import report_item
from aiida_slem.cli.setup_pseudos import (
    QE_INSTALL_HINT,
    ensure_pseudo_family,
    install_reported,
    make_default_family,
    read_pseudo_dir,
    screen_new_files,
)

QE_EXECUTABLES = {
    "pw": ("pw.x", "quantumespresso.pw"),
    "pp": ("pp.x", "quantumespresso.pp"),
    "projwfc": ("projwfc.x", "quantumespresso.projwfc"),
}
CACHED_PLUGINS = (
    "aiida.calculations:quantumespresso.pw",
    "aiida.calculations:quantumespresso.pp",
    "aiida.calculations:slem.project",
    "aiida.calculations:slem.basis",
)


def find_executables() -> dict[str, Path]:
    found = {label: shutil.which(exe) for label, (exe, _) in QE_EXECUTABLES.items()}
    missing = [QE_EXECUTABLES[label][0] for label, path in found.items() if path is None]
    if missing:
        raise click.ClickException(f"{', '.join(missing)} not found on PATH.\n{QE_INSTALL_HINT}")
    slem_exe = shutil.which("slem") or str(Path(sys.executable).parent / "slem")
    if not Path(slem_exe).exists():
        raise click.ClickException(
            "the 'slem' command is not installed: run 'pip install -e .' in the repository"
        )
    found["slem"] = slem_exe
    return {label: Path(path) for label, path in found.items()}


def _psql_profile_command(name: str) -> list[str]:
    """Create the database ourselves: `verdi presto --use-postgres` asks for the server's en_US.UTF-8
    template locale, which minimal Debian images lack; C.UTF-8 always exists."""
    from aiida.manage.external.postgres import Postgres

    postgres = Postgres(
        interactive=False, quiet=True, dbinfo={"host": "localhost", "port": 5432, "user": "postgres"}
    )
    if not postgres.is_connected:
        raise click.ClickException(
            "PostgreSQL is not reachable on localhost:5432 as user 'postgres'; start it "
            "('pg_ctlcluster <version> main start') or use --backend embedded"
        )
    db = f"aiida_slem_{name}".replace("-", "_")
    if not postgres.dbuser_exists(db):
        postgres.create_dbuser(db, db, "CREATEDB")
    if not postgres.db_exists(db):
        postgres.execute(
            f'CREATE DATABASE "{db}" OWNER "{db}" ENCODING \'UTF8\' '
            "LC_COLLATE='C.UTF-8' LC_CTYPE='C.UTF-8' TEMPLATE=template0"
        )
    from aiida.manage.configuration import get_config

    repository = Path(get_config().dirpath) / "repository" / f"psql_{name}"
    return [
        "verdi",
        "profile",
        "setup",
        "core.psql_dos",
        "--non-interactive",
        "--profile-name",
        name,
        "--email",
        "user@aiida-slem.local",
        "--first-name",
        "aiida",
        "--last-name",
        "slem",
        "--institution",
        "-",
        "--broker",
        "core.rabbitmq",
        "--database-hostname",
        "localhost",
        "--database-port",
        "5432",
        "--database-name",
        db,
        "--database-username",
        db,
        "--database-password",
        db,
        "--repository-uri",
        repository.as_uri(),
        "--set-as-default",
    ]


def ensure_profile(profile_name: str | None, backend: str) -> str:
    """Load the requested (or default) profile, creating one with ``verdi presto`` when none exists."""
    from aiida.manage.configuration import get_config

    config = get_config(create=True)
    names = config.profile_names
    if profile_name and profile_name in names:
        report_item(f"profile {profile_name}", "exists")
        return profile_name
    if not profile_name and config.default_profile_name in names:
        report_item(f"profile {config.default_profile_name}", "exists", "(default)")
        return config.default_profile_name
    name = profile_name or "aiida-slem"
    command = ["verdi", "presto", "--profile-name", name]
    if backend == "embedded":
        command.append("--use-zeromq")
    else:
        command = _psql_profile_command(name)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(f"creating the profile failed:\n{result.stdout}\n{result.stderr}")
    from aiida.manage.configuration import reset_config

    reset_config()  # verdi presto wrote the config file in another process
    report_item(f"profile {name}", "created", f"({backend})")
    return name


def ensure_computer(label: str = "localhost"):
    from aiida import orm

    try:
        computer = orm.load_computer(label)
        report_item(f"computer {label}", "exists")
    except Exception:
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            description="this machine",
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(Path.home() / "aiida_run"),
        ).store()
        report_item(f"computer {label}", "created")
    if not computer.is_configured:
        computer.configure(safe_interval=0)
    computer.set_minimum_job_poll_interval(0.5)
    computer.set_default_mpiprocs_per_machine(1)
    return computer


def ensure_code(label: str, executable: Path, plugin: str | None, computer) -> None:
    from aiida import orm

    candidates = orm.QueryBuilder().append(orm.InstalledCode, filters={"label": label}).all(flat=True)
    existing = [code for code in candidates if code.computer.pk == computer.pk]
    if existing:
        code = existing[0]
        if str(code.filepath_executable) == str(executable):
            report_item(f"code {label}@{computer.label}", "exists", str(executable))
            return
        raise click.ClickException(
            f"code {label}@{computer.label} exists but points to {code.filepath_executable}, "
            f"not {executable}; "
            f"remove or relabel it ('verdi code relabel {code.pk} {label}-old') and rerun"
        )
    code = orm.InstalledCode(
        computer=computer, filepath_executable=str(executable), default_calc_job_plugin=plugin
    )
    code.label = label
    code.description = f"{executable.name} for aiida-slem"
    if label == "slem":
        code.prepend_text = "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}"
    code.store()
    report_item(f"code {label}@{computer.label}", "created", str(executable))


def _loadable(identifier: str) -> bool:
    from aiida.plugins.entry_point import load_entry_point_from_string

    try:
        load_entry_point_from_string(identifier)
    except Exception:  # a plugin of this package that is not installed yet must not block setup
        return False
    return True


def ensure_caching() -> None:
    from aiida.manage.configuration import get_config

    config = get_config()
    profile = config.get_profile(None)
    current = list(config.get_option("caching.enabled_for", profile.name, default=[]) or [])
    wanted = sorted(set(current) | {name for name in CACHED_PLUGINS if _loadable(name)})
    if wanted == sorted(current):
        report_item("caching (pw, pp, project)", "exists")
        return
    config.set_option("caching.enabled_for", wanted, scope=profile.name)
    config.store()
    report_item("caching (pw, pp, project)", "updated")


@click.command("setup")
@click.option(
    "--profile", "profile_name", default=None, help="Profile to use or create (default: the default one)."
)
@click.option(
    "--backend",
    type=click.Choice(["embedded", "psql"]),
    default="embedded",
    show_default=True,
    help="For a new profile: embedded = SQLite + ZeroMQ broker (no services); "
    "psql = PostgreSQL + RabbitMQ on localhost.",
)
@click.option("--computer", "computer_label", default="localhost", show_default=True)
@click.option(
    "--pseudo-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Install this folder of UPFs (one per element, norm-conserving, scalar-relativistic) as a "
    "pseudopotential family and make it the pipeline's default. Cutoffs come from its MANIFEST.txt "
    "(PseudoDojo hints_Ha low/normal/high) or cutoffs.json, or from --cutoffs.",
)
@click.option(
    "--family-label",
    default=None,
    help="Label of the family made from --pseudo-dir (default: SLEM/<folder name>).",
)
@click.option(
    "--cutoffs",
    "cutoffs_option",
    default=None,
    help="Recommended cutoffs for --pseudo-dir in Ry: 'Si=30/120,Ga=40' (ecutrho defaults to 4 x ecutwfc) "
    "or a JSON file {element: {cutoff_wfc, cutoff_rho}}; replaces the folder's hints.",
)
@click.option(
    "--pseudo-family",
    default=None,
    help="Make this installed aiida-pseudo family (e.g. from 'aiida-pseudo install pseudo-dojo') the "
    "pipeline's default, after checking every UPF in it.",
)
def setup(
    profile_name: str | None,
    backend: str,
    computer_label: str,
    pseudo_dir: Path | None,
    family_label: str | None,
    cutoffs_option: str | None,
    pseudo_family: str | None,
) -> None:
    """Prepare this machine for aiida-slem. Safe to run again: existing items are left alone.

    Creates (when missing) an AiiDA profile, the localhost computer, InstalledCodes pw, pp, projwfc and slem,
    the pseudopotential family SLEM/NC/PBE/Debian, and enables caching for the DFT and projection steps.
    With --pseudo-dir or --pseudo-family, that family becomes the pipeline's default instead of Debian's.
    """
    if (family_label or cutoffs_option) and pseudo_dir is None:
        raise click.UsageError("--family-label and --cutoffs go with --pseudo-dir")
    executables = find_executables()
    click.echo("aiida-slem setup")
    own = read_pseudo_dir(pseudo_dir, cutoffs_option, screen=False) if pseudo_dir is not None else None
    if own is not None:
        family_label = family_label or f"SLEM/{pseudo_dir.resolve().name}"
        screen_new_files(own[0], family_label, profile_name)
    name = ensure_profile(profile_name, backend)
    from aiida import load_profile

    load_profile(name, allow_switch=True)
    computer = ensure_computer(computer_label)
    for label, (_, plugin) in QE_EXECUTABLES.items():
        ensure_code(label, executables[label], plugin, computer)
    ensure_code("slem", executables["slem"], None, computer)
    ensure_pseudo_family()
    if own is not None:
        files, cutoffs = own
        source = f"UPFs installed by aiida-slem from {pseudo_dir.resolve()}"
        install_reported(files, family_label, cutoffs, source)
    default = pseudo_family or (family_label if own is not None else None)
    if default is not None:
        make_default_family(default)
    ensure_caching()
    click.echo(f"Done. Check with 'verdi -p {name} status' and 'verdi -p {name} code list'.")
