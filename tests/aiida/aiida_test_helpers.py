"""Plain helpers of the AiiDA-side tests (no fixtures: those live in ``conftest.py`` and are never imported).

Import them by name, e.g. ``from aiida_test_helpers import si8_structure``: pytest puts this folder (it has
no ``__init__``) on ``sys.path``. The name is unique across ``tests/`` so no other folder's module shadows it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm

from aiida_slem.pseudos import DEBIAN_PSEUDO_DIR
from slem.basis.orbital import ElementBasis, RadialOrbital, write_basis
from slem.data.frame import Frame, frame_from_blocks, write_frames
from slem.data.orbitals import n_orbitals

FIXTURES = Path(__file__).parent / "fixtures"
SI_UPF = DEBIAN_PSEUDO_DIR / "Si.pbe-rrkj.UPF"
SI_LATTICE = 5.43
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


# the train and validation sections of the tiny end-to-end pipelines: 20 training steps, a few k-points
TINY_PIPELINE = {
    "train": {
        "config": {
            "model": {"n_layers": 1},
            "training": {"max_steps": 20, "validate_every": 10, "checkpoint_every": 10},
        }
    },
    "validation": {"settings": {"kpath_npoints": 10, "n_random_k": 2}},
}


def si8_structure(rattle: float = 0.0, seed: int = 0) -> orm.StructureData:
    """Conventional diamond Si cell, 8 atoms."""
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=SI_LATTICE, cubic=True)
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return orm.StructureData(ase=atoms)


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


def slem_executable() -> str:
    path = Path(sys.executable).parent / "slem"
    if not path.exists():
        pytest.skip("the slem command is not installed")
    return str(path)


DOJO_NLCC = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"


def dojo_family(tmp_path: Path, element: str) -> str:
    """Install the PseudoDojo file of ``element`` from tests/data (with its MANIFEST row: the cutoff hints) as
    a family of its own; returns the family's label."""
    import shutil
    import uuid

    from aiida_slem.cli.setup_pseudos import read_pseudo_dir
    from aiida_slem.pseudo_families import install_family

    folder = tmp_path / f"dojo-{element}"
    folder.mkdir()
    rows = (DOJO_NLCC / "MANIFEST.txt").read_text().splitlines()
    rows = [r for r in rows if r.startswith("#") or r.split()[0] == element]
    for row in rows:
        if not row.startswith("#"):
            shutil.copy(DOJO_NLCC / row.split()[1], folder)
    (folder / "MANIFEST.txt").write_text("\n".join(rows) + "\n")
    files, cutoffs = read_pseudo_dir(folder, None)
    label = f"test/{element.lower()}-{uuid.uuid4().hex[:8]}"
    install_family(files, label, cutoffs, f"{element} for the tests")
    return label
