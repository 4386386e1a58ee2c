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
