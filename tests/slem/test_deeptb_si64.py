"""DeePTB's own Si64 frame (ABACUS, 1s1p): import, physical sanity, lossless round trips."""

from __future__ import annotations

import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.linalg
from test_data_synthetic import assert_frames_equal

from slem.data.deeph import read_deeph, write_deeph
from slem.data.deeptb import read_deeptb, write_deeptb
from slem.data.graph import build_graph

ARCHIVE = Path(__file__).parents[1] / "data" / "deeptb_si64" / "Si64.tar.xz"


@pytest.fixture(scope="module")
def si64_root(tmp_path_factory) -> Path:
    """DeePTB's Si64 example from the dptb 2.2.1 wheel, shipped in the repository: tests download nothing."""
    root = tmp_path_factory.mktemp("si64")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(root, filter="data")
    return root


@pytest.fixture(scope="module")
def si64(si64_root):
    frames = read_deeptb(si64_root)
    assert len(frames) == 1
    return frames[0]


def test_import(si64):
    assert si64.n_atoms == 64 and set(si64.symbols) == {"Si"} and si64.basis == {"Si": "1s1p"}
    np.testing.assert_allclose(si64.cell, np.eye(3) * 10.887404441833496)
    assert len(si64.pairs) == 9434 and set(si64.operators) == {"H", "S"}
    assert si64.operators["H"].dtype == np.float64


def test_blocks_are_hermitian(si64):
    for op in ("H", "S"):
        blocks = si64.blocks(op)
        for (i, j, *r), block in blocks.items():
            np.testing.assert_array_equal(block, blocks[(j, i, -r[0], -r[1], -r[2])].T)


def test_gamma_point_is_physical(si64):
    """S(Gamma) positive definite, and a gap at the Fermi level after the 128 valence bands."""
    norb = si64.orbitals_per_atom
    offsets = np.concatenate([[0], np.cumsum(norb)])
    h, s = (np.zeros((offsets[-1],) * 2) for _ in range(2))
    for p, (i, j) in enumerate(si64.pairs):
        rows, cols = slice(offsets[i], offsets[i + 1]), slice(offsets[j], offsets[j + 1])
        h[rows, cols] += si64.block("H", p)
        s[rows, cols] += si64.block("S", p)
    assert np.linalg.eigvalsh(s).min() > 0.1
    energies = scipy.linalg.eigh(h, s, eigvals_only=True)
    gap = energies[128] - energies[127]  # 64 atoms x 4 valence electrons / 2
    assert 0.5 < gap < 3.0, gap


@pytest.mark.slow
def test_deeptb_round_trip_keeps_files_block_for_block(si64, si64_root, tmp_path):
    write_deeptb([si64], tmp_path, prefix="Si64")
    assert_frames_equal(read_deeptb(tmp_path)[0], si64)
    for name in ("hamiltonians.h5", "overlaps.h5"):
        with h5py.File(si64_root / "Si64.0" / name) as a, h5py.File(tmp_path / "Si64.0" / name) as b:
            assert set(a["0"]) == set(b["0"])  # S's vanishing blocks stay absent
            for key in list(a["0"])[::97]:
                np.testing.assert_array_equal(a["0"][key][()], b["0"][key][()])


@pytest.mark.slow
def test_deeph_round_trip(si64, tmp_path):
    write_deeph([si64], tmp_path)
    assert_frames_equal(read_deeph(tmp_path)[0], si64)


def test_graph_matches_deeptb_edge_count(si64):
    graph = build_graph(si64, ["Si"], {"Si": 7.4})
    assert graph["edge_index"].shape[1] == 5504  # DeePTB's own count at r_max 7.4 (design notes)
