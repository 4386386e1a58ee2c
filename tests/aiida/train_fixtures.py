"""Fixtures of the training/prediction tests: real DeePTB Si64 frames (H, S of ABACUS, 1s1p) as
``DatasetData``, a localhost ``slem`` code for ``slem.train``/``slem.predict``, small model configs and
Computers with the Slurm and PBSPro schedulers for submit-script checks.

Import the fixtures into a test module with ``from train_fixtures import *`` (this folder has no
``conftest`` of its own for them: ``tests/aiida/conftest.py`` belongs to the data-node tests).
"""

from __future__ import annotations

import copy
import sys
import tarfile
from pathlib import Path

import pytest
from aiida import orm

from slem.data.frame import Frame, frame_from_blocks, write_frames

SI64_ARCHIVE = Path(__file__).parents[1] / "data" / "deeptb_si64" / "Si64.tar.xz"

# 1 layer, nearest neighbours only (2.35 Angstrom bonds): about 10k parameters, 0.05 s per step on one core
TINY_MODEL = {
    "r_cut": {"Si": 2.6},
    "n_layers": 1,
    "hidden_irreps": "8x0e+8x1o+4x2e",
    "latent_dim": 16,
    "latent_hidden": [16],
    "n_radial": 4,
    "overlap_hidden": [16],
    "avg_num_neighbors": 4,
}


def tiny_config(max_steps: int = 10, **training) -> dict:
    """A ``slem.train`` config (no dataset/output_dir: the CalcJob sets them) for the tiny model."""
    return {
        "operators": ["H", "S"],
        "model": copy.deepcopy(TINY_MODEL),
        "training": {
            "max_steps": max_steps,
            "lr": 5e-3,
            "validate_every": 5,
            "checkpoint_every": 5,
            "seed": 1,
            **training,
        },
    }


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


def truncate_basis(frame: Frame, shells: str, n_orbitals: int) -> Frame:
    """The same frame in a smaller basis: the leading ``n_orbitals`` of every block (e.g. 1s1p -> 1s)."""
    blocks = {
        op: {key: block[:n_orbitals, :n_orbitals] for key, block in frame.blocks(op).items()}
        for op in frame.operators
    }
    return frame_from_blocks(
        frame.numbers,
        frame.positions,
        frame.cell,
        frame.pbc,
        {el: shells for el in frame.basis},
        blocks,
        dict(frame.metadata),
    )


def dataset_node(path: Path, frames: list[Frame], split: dict | None):
    from aiida_slem.data.dataset import DatasetData

    write_frames(path, frames, split=split)
    return DatasetData(path).store()


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


def slem_executable() -> str:
    path = Path(sys.executable).parent / "slem"
    if not path.exists():
        pytest.skip("the slem command is not installed")
    return str(path)


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


__all__ = ["scheduler_code", "si64_dataset", "si64_dataset_two_train", "si64_frames", "slem_code"]
