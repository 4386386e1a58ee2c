"""Fixtures of the AiiDA-side tests: real codes on localhost, the Debian pseudopotential family,
small frame and basis files, and a ``generate_calc_job`` helper in aiida-quantumespresso's style."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm

from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR, FAMILY_LABEL
from slem.basis.orbital import ElementBasis, RadialOrbital, write_basis
from slem.data.frame import frame_from_blocks, write_frames
from slem.data.orbitals import n_orbitals

FIXTURES = Path(__file__).parent / "fixtures"
SI_UPF = DEBIAN_PSEUDO_DIR / "Si.pbe-rrkj.UPF"
SI_LATTICE = 5.43


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _executable(name: str) -> str:
    path = shutil.which(name) if name != "slem" else str(Path(sys.executable).parent / "slem")
    if not path or not Path(path).exists():
        pytest.skip(f"{name} is not installed")
    return path


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

    from aiida_slem.cli.setup import ensure_pseudo_family

    ensure_pseudo_family()
    return orm.QueryBuilder().append(CutoffsPseudoPotentialFamily, filters={"label": FAMILY_LABEL}).one()[0]


@pytest.fixture
def si_upf(aiida_profile):
    from aiida_pseudo.data.pseudo import UpfData

    return UpfData(SI_UPF)


def si8_structure(rattle: float = 0.0, seed: int = 0) -> orm.StructureData:
    """Conventional diamond Si cell, 8 atoms."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=SI_LATTICE, cubic=True)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return orm.StructureData(ase=atoms)


@pytest.fixture
def si8():
    return si8_structure()


@pytest.fixture
def si2():
    from ase.build import bulk

    return orm.StructureData(ase=bulk("Si", "diamond", a=SI_LATTICE))


def write_test_basis(path: Path, upf_md5: str = "0" * 32, shells: str = "1s1p") -> Path:
    """A tiny but valid slem-basis file (Gaussian-like radial functions cut at 4 Angstrom)."""
    from slem.data.orbitals import parse_shells

    r = np.linspace(0.0, 4.0, 201)
    orbitals = []
    for index, l in enumerate(parse_shells(shells)):
        values = r**l * np.exp(-(r**2)) * (r < 4.0)
        values /= np.sqrt(np.trapezoid(values**2 * r**2, r))
        zeta = parse_shells(shells)[:index].count(l)
        orbitals.append(RadialOrbital(l=l, zeta=zeta, r=r, values=values, cutoff=4.0))
    basis = ElementBasis("Si", "SZ", orbitals, upf_name="Si.pbe-rrkj.UPF", upf_md5=upf_md5)
    return write_basis(path, {"Si": basis})


def write_test_frame(
    path: Path, n_atoms: int = 2, shells: str = "1s1p", seed: int = 0, metadata: dict | None = None
) -> Path:
    """A valid one-frame file with random H, S, D blocks for onsite and nearest pairs."""
    rng = np.random.default_rng(seed)
    norb = n_orbitals(shells)
    positions = rng.uniform(0, 5, size=(n_atoms, 3))
    keys = [(i, j, 0, 0, 0) for i in range(n_atoms) for j in range(n_atoms)] + [(0, 0, 1, 0, 0)]
    blocks = {op: {k: rng.normal(size=(norb, norb)) for k in keys} for op in ("H", "S", "D")}
    frame = frame_from_blocks(
        ["Si"] * n_atoms,
        positions,
        np.eye(3) * 5.43,
        [True] * 3,
        {"Si": shells},
        blocks,
        metadata or {"basis_label": "SZ"},
    )
    return write_frames(path, [frame])


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
