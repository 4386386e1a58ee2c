"""Graphs, batching, the inverse map to frames, and the dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from test_data_synthetic import BASIS, CUTOFFS, assert_frames_equal, random_frame

from slem.data.frame import write_frames
from slem.data.graph import FrameDataset, build_graph, collate, frame_from_prediction, frames_from_prediction

SPECIES = ["C", "Si"]
TARGETS = [f"{op}_{part}" for op in "HSD" for part in ("onsite", "hopping")]


def _block(graph, op, kind, k):
    offsets, norb = graph[f"{kind}_offsets"], graph["norb"]
    i, j = (k, k) if kind == "onsite" else graph["edge_index"][:, k].tolist()
    flat = graph[f"{op}_{kind}"][offsets[k] : offsets[k + 1]]
    return flat.reshape(int(norb[i]), int(norb[j])).numpy()


def test_graph_layout_and_targets_match_frame():
    frame = random_frame(0, n_atoms=4)
    graph = build_graph(frame, SPECIES, CUTOFFS)
    n, e = 4, graph["edge_index"].shape[1]
    assert graph["pos"].shape == (n, 3) and graph["pos"].dtype == torch.float64
    assert graph["species"].tolist() == [1, 0, 1, 0] and graph["batch"].tolist() == [0] * n
    assert (
        graph["cell"].shape == (1, 3, 3)
        and graph["n_atoms"].tolist() == [n]
        and graph["n_edges"].tolist() == [e]
    )
    assert graph["edge_shift"].shape == (e, 3) and graph["cell_shift"].dtype == torch.long
    i, j = graph["edge_index"]
    vec = graph["pos"][j] + graph["edge_shift"] - graph["pos"][i]
    radius = torch.tensor([CUTOFFS["Si"] if s == 1 else CUTOFFS["C"] for s in graph["species"].tolist()])
    assert torch.all(vec.norm(dim=1) < 0.5 * (radius[i] + radius[j]))
    np.testing.assert_allclose(graph["edge_shift"], graph["cell_shift"].double() @ graph["cell"][0])
    assert graph["onsite_offsets"][-1] == graph["H_onsite"].numel() == (graph["norb"] ** 2).sum()
    assert graph["hopping_offsets"][-1] == graph["H_hopping"].numel()
    lookup, blocks = frame.pair_lookup(), {op: frame.blocks(op) for op in "HSD"}
    assert len(lookup) == n + e  # the frame stores exactly the onsite pairs and the edges
    for op in "HSD":
        for a in range(n):
            np.testing.assert_array_equal(_block(graph, op, "onsite", a), blocks[op][(a, a, 0, 0, 0)])
        for k in range(e):
            key = (*graph["edge_index"][:, k].tolist(), *graph["cell_shift"][k].tolist())
            np.testing.assert_array_equal(_block(graph, op, "hopping", k), blocks[op][key])


def test_edges_the_frame_lacks_get_zero_targets():
    frame = random_frame(1, n_atoms=3, drop_pairs=2)
    graph = build_graph(frame, SPECIES, CUTOFFS, operators=("S",))
    assert "H_onsite" not in graph and "S_hopping" in graph
    lookup = frame.pair_lookup()
    keys = [
        (*ij, *r) for ij, r in zip(graph["edge_index"].T.tolist(), graph["cell_shift"].tolist(), strict=True)
    ]
    missing = [k for k, key in enumerate(keys) if key not in lookup]
    assert len(missing) == 4
    for k in missing:
        assert not np.any(_block(graph, "S", "hopping", k))


def test_frame_from_prediction_inverts_build_graph():
    frame = random_frame(2, n_atoms=4)
    graph = build_graph(frame, SPECIES, CUTOFFS)
    back = frame_from_prediction(graph, {k: graph[k] for k in TARGETS}, BASIS)
    assert_frames_equal(back, frame)


def test_collate_and_split_back():
    frames = [random_frame(3, n_atoms=3), random_frame(4, n_atoms=4)]
    graphs = [build_graph(f, SPECIES, CUTOFFS) for f in frames]
    batch = collate(graphs)
    n0, e0 = 3, graphs[0]["edge_index"].shape[1]
    assert batch["batch"].tolist() == [0] * 3 + [1] * 4
    assert torch.equal(batch["edge_index"][:, e0:], graphs[1]["edge_index"] + n0)
    assert batch["cell"].shape == (2, 3, 3) and batch["n_atoms"].tolist() == [3, 4]
    assert batch["hopping_offsets"][-1] == batch["H_hopping"].numel()
    assert torch.equal(
        batch["hopping_offsets"][e0:] - batch["hopping_offsets"][e0], graphs[1]["hopping_offsets"]
    )
    outputs = {k: batch[k] for k in TARGETS}
    for a, b in zip(frames, frames_from_prediction(batch, outputs, BASIS), strict=True):
        assert_frames_equal(b, a)
    with pytest.raises(ValueError, match="frames_from_prediction"):
        frame_from_prediction(batch, outputs, BASIS)
    with pytest.raises(ValueError, match="graph layout needs"):
        frames_from_prediction(batch, {**outputs, "H_onsite": outputs["H_onsite"][:-1]}, BASIS)
    with pytest.raises(ValueError, match="different keys"):
        collate([graphs[0], build_graph(frames[1], SPECIES, CUTOFFS, operators=("H",))])


def test_float32_graph():
    graph = build_graph(random_frame(6, n_atoms=2), SPECIES, CUTOFFS, dtype=torch.float32)
    for key in ("pos", "edge_shift", "cell", *TARGETS):
        assert graph[key].dtype == torch.float32, key
    assert graph["edge_index"].dtype == graph["hopping_offsets"].dtype == torch.long


def test_atoms_input_and_errors():
    frame = random_frame(5, n_atoms=3)
    atoms = Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    graph = build_graph(atoms, SPECIES, CUTOFFS, basis=BASIS)
    reference = build_graph(frame, SPECIES, CUTOFFS)
    assert "H_onsite" not in graph
    for key in graph:
        assert torch.equal(graph[key], reference[key]), key
    with pytest.raises(ValueError, match="needs basis"):
        build_graph(atoms, SPECIES, CUTOFFS)
    with pytest.raises(ValueError, match="not in the model's species"):
        build_graph(frame, ["Si"], CUTOFFS)
    with pytest.raises(TypeError, match="Frame or ase.Atoms"):
        build_graph("Si2", SPECIES, CUTOFFS)


def test_frame_dataset_split_and_loader(tmp_path):
    frames = [random_frame(s, n_atoms=2) for s in range(4)]
    path = write_frames(tmp_path / "f.h5", frames, split={"train": [0, 3], "validation": [1]})
    for preload in (True, False):
        train = FrameDataset(path, SPECIES, CUTOFFS, split="train", preload=preload)
        assert len(train) == 2
        assert torch.equal(train[1]["H_onsite"], build_graph(frames[3], SPECIES, CUTOFFS)["H_onsite"])
    loader = torch.utils.data.DataLoader(
        FrameDataset(path, SPECIES, CUTOFFS), batch_size=2, collate_fn=collate
    )
    batches = list(loader)
    assert len(batches) == 2 and batches[1]["n_atoms"].tolist() == [2, 2]
    with pytest.raises(KeyError, match="no split 'test'"):
        FrameDataset(path, SPECIES, CUTOFFS, split="test")
