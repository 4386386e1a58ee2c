"""``model.overlap: basis``: S from the basis's two-centre integrals, equal to the projection's S.

The reference is ``slem project``'s own S (slem/projection/realspace.py) on a distorted, off-grid
GaAs cell with the PseudoDojo Ga-d/As-d DZP bases (s, p and d shells, several zetas): every block,
onsite and hopping, in every direction, must agree. A basis that is not the data's is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from test_train_run import SI8, tiny_config

from slem.basis.generate import generate_basis
from slem.basis.orbital import write_basis
from slem.data.graph import build_graph
from slem.model import SlemConfig, build_model, load_model
from slem.projection.radial import BOHR
from slem.projection.realspace import RealSpaceOperators
from slem.qe.inputs import DEFAULT_PSEUDO_DIR
from slem.qe.upf import read_upf
from slem.train.config import ConfigError, validate_config
from slem.train.trainer import Trainer

PSEUDOS = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
FILES = {"Ga": "Ga-d.upf", "As": "As-d.upf"}


@pytest.fixture(scope="module")
def gaas_bases():
    return {el: generate_basis(PSEUDOS / f, preset="DZP") for el, f in FILES.items()}


def _blocks(flat: torch.Tensor, offsets, rows, cols) -> list[np.ndarray]:
    flat, offsets = flat.detach().numpy(), np.asarray(offsets)[: len(rows)]  # offsets end with the total
    return [flat[o : o + r * c].reshape(r, c) for o, r, c in zip(offsets, rows, cols, strict=True)]


def test_exact_overlap_equals_the_projection_overlap(gaas_bases):
    rng = np.random.default_rng(3)
    cell = 5.65 * np.eye(3) + rng.normal(0.0, 0.15, (3, 3))
    symbols = ["Ga", "As", "Ga", "As", "Ga", "As"]
    positions = rng.uniform(0.0, 5.6, (6, 3))
    shells = {el: b.shells for el, b in gaas_bases.items()}
    assert shells == {"Ga": "2s2p2d", "As": "2s2p2d"}
    # a pair's cutoff is the mean of its two species' values: 2 r_c gives every overlapping pair
    cutoffs = {el: 2 * b.cutoff for el, b in gaas_bases.items()}
    config = SlemConfig(species=["Ga", "As"], basis=shells, r_cut=cutoffs,
                        heads=["S"], overlap="basis", dtype="float64")
    model = build_model(config)
    model.heads["S"].set_basis(gaas_bases)
    graph = build_graph(Atoms(symbols, positions=positions, cell=cell, pbc=True), ["Ga", "As"], cutoffs,
                        operators=(), basis=shells)
    out = model(graph)

    ops = RealSpaceOperators(gaas_bases, {el: read_upf(PSEUDOS / f) for el, f in FILES.items()}, 20.0)
    edges = graph["edge_index"].numpy().T
    shifts = graph["cell_shift"].numpy()
    keys = [(int(i), int(j), *map(int, r)) for (i, j), r in zip(edges, shifts, strict=True)]
    reference = ops.two_centre("S", keys, cell / BOHR, positions / BOHR, symbols)
    norb = graph["norb"].numpy()
    hopping = _blocks(out["S_hopping"], graph["hopping_offsets"], norb[edges[:, 0]], norb[edges[:, 1]])
    assert len(keys) > 500 and max(np.abs(reference[k]).max() for k in keys) > 0.5
    assert max(np.abs(h - reference[k]).max() for h, k in zip(hopping, keys, strict=True)) < 1e-7
    onsite_keys = [(i, i, 0, 0, 0) for i in range(len(symbols))]
    onsite_ref = ops.two_centre("S", onsite_keys, cell / BOHR, positions / BOHR, symbols)
    onsite = _blocks(out["S_onsite"], graph["onsite_offsets"], norb, norb)
    assert max(np.abs(o - onsite_ref[k]).max() for o, k in zip(onsite, onsite_keys, strict=True)) < 1e-10
    # zetas of one l are not orthogonal: the onsite block is more than the identity
    assert np.abs(onsite[0] - np.eye(norb[0])).max() > 0.1


def test_a_basis_of_other_shells_is_refused(gaas_bases):
    config = SlemConfig(species=["Ga", "As"], basis={"Ga": "1s1p1d", "As": "2s2p2d"}, r_cut=10.0,
                        heads=["S"], overlap="basis")
    with pytest.raises(ValueError, match="Ga is 2s2p2d but the model's is 1s1p1d"):
        build_model(config).heads["S"].set_basis(gaas_bases)


@pytest.fixture(scope="module")
def si_sz_basis(tmp_path_factory) -> Path:
    """The basis of tests/data/si8_frames.h5 (make_si8_frames.py: Debian Si, SZ, radius 3.7 A)."""
    upf = DEFAULT_PSEUDO_DIR / "Si.pbe-rrkj.UPF"
    if not upf.is_file():
        pytest.skip("Debian's Si.pbe-rrkj.UPF is not installed (quantum-espresso-data)")
    path = tmp_path_factory.mktemp("basis") / "basis.h5"
    write_basis(path, {"Si": generate_basis(upf, preset="SZ", radii=3.7)})
    return path


def _exact_config(out, basis_path) -> dict:
    config = tiny_config(out, max_steps=4)
    config["model"]["overlap"] = "basis"
    config["dataset"]["basis_path"] = str(basis_path)
    return config


@pytest.mark.usefixtures("one_thread")
def test_training_with_the_exact_overlap_matches_the_data_and_survives_saving(tmp_path, si_sz_basis):
    assert SI8.is_file()
    summary = Trainer(validate_config(_exact_config(tmp_path / "run", si_sz_basis)), progress=False).run()
    assert summary["test"]["S_mae"] < 1e-6
    model, _ = load_model(tmp_path / "run" / "model.pt")
    assert bool(model.heads["S"].filled)
    assert sum(p.numel() for p in model.heads["S"].parameters()) == 0


def test_the_exact_overlap_needs_the_basis_file_and_refuses_another(tmp_path, si_sz_basis):
    config = _exact_config(tmp_path / "run", si_sz_basis)
    del config["dataset"]["basis_path"]
    with pytest.raises(ConfigError, match="give dataset.basis_path"):
        validate_config(config)
    wrong = tmp_path / "wrong.h5"  # same shells, another radius: the S of the data does not match
    write_basis(wrong, {"Si": generate_basis(DEFAULT_PSEUDO_DIR / "Si.pbe-rrkj.UPF", preset="SZ",
                                             radii=3.2)})
    with pytest.raises(ConfigError, match="differs from the training data's S"):
        Trainer(validate_config(_exact_config(tmp_path / "run2", wrong)), progress=False).run()
