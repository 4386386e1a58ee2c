"""Session-cached pw.x / pp.x runs and projections for the projection tests.

Every run happens once per test session in a temporary folder; tests that need pw.x are
marked slow and skip (with the reason) when Quantum ESPRESSO is not installed.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from slem.qe.inputs import DEFAULT_PSEUDO_DIR, pp_input, pw_input, run_qe

SI = "Si.pbe-rrkj.UPF"
C = "C.pbe-mt_gipaw.UPF"
HARTREE_EV = 27.211386245988


def fcc_cell(a: float) -> np.ndarray:
    return 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def structure(name: str) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, str], float]:
    """(symbols, positions, cell, pseudos, ecutwfc) of the test systems."""
    if name == "si2":
        cell = fcc_cell(5.43)
        return ["Si", "Si"], np.array([[0, 0, 0], [1.3575] * 3]), cell, {"Si": SI}, 30.0
    if name == "si2_distorted":
        # Strained cell and displaced atoms: no symmetry maps grid axes onto each other, so a
        # wrong grid order of the potential file cannot go unnoticed.
        cell = fcc_cell(5.43) @ np.array([[1.02, 0.03, -0.01], [0.0, 0.99, 0.02], [0.01, 0.0, 1.01]])
        pos = np.array([[0.05, -0.03, 0.02], [1.3575 + 0.08, 1.3575 - 0.04, 1.3575 + 0.11]])
        return ["Si", "Si"], pos, cell, {"Si": SI}, 25.0
    if name == "sic":
        return ["Si", "C"], np.array([[0, 0, 0], [1.09] * 3]), fcc_cell(4.36), {"Si": SI, "C": C}, 40.0
    raise KeyError(name)


@dataclass
class QeCase:
    workdir: Path
    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray
    pseudos: dict[str, str]
    ecutwfc: float
    scf_seconds: float = 0.0
    _bands: dict = field(default_factory=dict)

    @property
    def save(self) -> Path:
        return self.workdir / "out" / "pwscf.save"

    @property
    def potential(self) -> Path:
        return self.workdir / "vtot.dat"

    def bands(self, kpts: np.ndarray, nbnd: int) -> np.ndarray:
        """pw.x non-SCF eigenvalues (eV) at fractional kpts, run on a copy of the SCF folder."""
        key = (np.asarray(kpts).round(10).tobytes(), nbnd)
        if key not in self._bands:
            from slem.qe.xml import read_qe_xml

            folder = self.workdir / f"bands{len(self._bands)}"
            shutil.copytree(self.workdir / "out", folder / "out")
            text = pw_input(
                self.symbols,
                self.positions,
                self.cell,
                self.pseudos,
                self.ecutwfc,
                kpts,
                calculation="bands",
                nbnd=nbnd,
            )
            run_qe("pw.x", text, folder, "bands")
            self._bands[key] = read_qe_xml(folder / "out" / "pwscf.save").eigenvalues_ha * HARTREE_EV
        return self._bands[key]


class QeRuns:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: dict[str, QeCase] = {}
        self.frames: dict[tuple[str, str], object] = {}

    def scf(self, name: str, rotation: np.ndarray | None = None, kmesh=(4, 4, 4)) -> QeCase:
        key = name if rotation is None else f"{name}_rot{abs(hash(rotation.round(12).tobytes()))}"
        if key not in self.cases:
            if shutil.which("pw.x") is None or shutil.which("pp.x") is None:
                pytest.skip("pw.x/pp.x not installed (Debian package quantum-espresso)")
            if not (DEFAULT_PSEUDO_DIR / SI).is_file():
                pytest.skip(f"{DEFAULT_PSEUDO_DIR / SI} not found")
            symbols, pos, cell, pseudos, ecut = structure(name)
            if rotation is not None:
                pos, cell = pos @ rotation.T, cell @ rotation.T
            case = QeCase(self.root / key, symbols, pos, cell, pseudos, ecut)
            case.scf_seconds = run_qe(
                "pw.x", pw_input(symbols, pos, cell, pseudos, ecut, kmesh), case.workdir, "scf"
            )
            run_qe("pp.x", pp_input(), case.workdir, "pp")
            self.cases[key] = case
        return self.cases[key]

    def basis(self, element: str, preset: str):
        from slem.basis.generate import generate_basis

        key = (element, preset)
        if key not in self.frames:
            upf = {"Si": SI, "C": C}[element]
            self.frames[key] = generate_basis(DEFAULT_PSEUDO_DIR / upf, preset=preset)
        return self.frames[key]

    def project(self, case: QeCase, preset: str = "DZP"):
        from slem.projection.project import project
        from slem.qe.potential import read_filplot
        from slem.qe.upf import read_upf
        from slem.qe.xml import read_qe_xml

        key = (str(case.workdir), preset)
        if key not in self.frames:
            scf = read_qe_xml(case.save)
            upfs = {label: read_upf(DEFAULT_PSEUDO_DIR / f) for label, f in scf.pseudo_files.items()}
            bases = {u.element: self.basis(u.element, preset) for u in upfs.values()}
            self.frames[key] = project(scf, read_filplot(case.potential), bases, upfs)
        return self.frames[key]


@pytest.fixture(scope="session")
def qe_runs(tmp_path_factory) -> QeRuns:
    return QeRuns(tmp_path_factory.mktemp("qe"))


@pytest.fixture(autouse=True)
def _restore_thread_settings():
    """The slem commands set OMP_NUM_THREADS & co. and torch's thread count for their process
    (slem/threads.py); tests run them inside this one, so every test gets back what it started with."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
    saved = {name: os.environ.get(name) for name in names}
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (bit-reproducible training steps on a shared machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_si_model() -> dict:
    """The smallest SLEM model section for the Si8 test frames; copy it before changing it."""
    return {
        "r_cut": {"Si": 3.0},
        "n_layers": 1,
        "hidden_irreps": "4x0e+4x1o+2x2e",
        "latent_dim": 8,
        "latent_hidden": [8],
        "n_radial": 4,
        "avg_num_neighbors": 4.0,
        "overlap_hidden": [8],
    }


def train_tiny_si8(out: Path, model: dict, seed: int = 0, steps: int = 1) -> Path:
    """model.pt of a tiny H, S model trained for ``steps`` on tests/data/si8_frames.h5 (one thread)."""
    import torch

    from slem.train.config import validate_config
    from slem.train.trainer import Trainer

    cfg = {
        "dataset": {"path": str(Path(__file__).parents[1] / "data" / "si8_frames.h5")},
        "operators": ["H", "S"],
        "output_dir": str(out),
        "model": dict(model),
        "training": {"max_steps": steps, "validate_every": steps, "seed": seed},
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    Trainer(validate_config(cfg), progress=False).run()
    torch.set_num_threads(threads)
    return out / "model.pt"


@pytest.fixture(scope="session")
def si8_model_path(tmp_path_factory, tiny_si_model) -> Path:
    """A tiny H, S model after one training step on tests/data/si8_frames.h5: for commands that need a model
    file, not a good one."""
    return train_tiny_si8(tmp_path_factory.mktemp("si8_model") / "run", tiny_si_model)
