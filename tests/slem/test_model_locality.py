"""Strict locality: blocks depend only on the cutoff spheres of their atoms, for any number of layers."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from ase import Atoms
from test_model_utils import make_graph, silicon, small_config

from slem.model import build_model

R_CUT = 3.0


def chain(x_last: float = 8.0, x_k3: float = 6.0) -> Atoms:
    """Zig-zag chain along x, spacing ~2 A, cutoff 3 A: each atom sees only its chain neighbours."""
    xs = [0.0, 2.0, 4.0, x_k3, x_last, 10.0]
    pos = np.array([[x, 0.3 * (k % 2), 0.1 * k] for k, x in enumerate(xs)])
    return Atoms("Si6", positions=pos, pbc=False)


def edge_id(graph: dict, i: int, j: int) -> int:
    ei = graph["edge_index"]
    hit = ((ei[0] == i) & (ei[1] == j)).nonzero()
    assert hit.numel() == 1
    return int(hit[0, 0])


def make_nonlocal(model):
    """Same model, but node messages also carry n_j: an ordinary message-passing network."""

    def message(self, node_i, hidden, node_j):
        mixed = [a + b for a, b in zip(node_i, node_j, strict=True)]
        return [(self.node_in, mixed), (self.hidden_out, hidden)]

    for head in model.heads.values():
        for layer in getattr(head, "layers", []):
            layer.node_message_input = types.MethodType(message, layer)
    return model


def blocks(model, atoms):
    cfg = model.config
    g = make_graph(atoms, cfg.species, {"Si": R_CUT})
    with torch.no_grad():
        out = model(g)
    return g, out


def hop_block(g, out, i, j, norb=4):
    e = edge_id(g, i, j)
    return out["H_hopping"][e * norb * norb : (e + 1) * norb * norb]


def onsite_block(out, i, norb=4):
    return out["H_onsite"][i * norb * norb : (i + 1) * norb * norb]


@pytest.fixture
def model():
    torch.manual_seed(1)
    cfg = small_config(basis={"Si": "1s1p"}, heads=("H",), n_layers=3)
    cfg.r_cut = {"Si": R_CUT}
    return build_model(cfg)


def _scenario(model):
    base_g, base = blocks(model, chain())
    # atom 4 moves but stays > r_cut from atoms 0 and 1 (and keeps its own neighbours 3 and 5)
    moved_g, moved = blocks(model, chain(x_last=8.4))
    assert torch.equal(base_g["edge_index"], moved_g["edge_index"])
    # atom 3 moves, staying > r_cut from atom 0
    far_g, far = blocks(model, chain(x_k3=6.3))
    return (base_g, base), (moved_g, moved), (far_g, far)


def test_strict_locality_bitwise(model):
    (bg, b), (mg, m), (fg, f) = _scenario(model)
    assert torch.equal(hop_block(bg, b, 0, 1), hop_block(mg, m, 0, 1))
    assert torch.equal(hop_block(bg, b, 1, 0), hop_block(mg, m, 1, 0))
    assert torch.equal(onsite_block(b, 0), onsite_block(f, 0))
    assert torch.equal(onsite_block(b, 1), onsite_block(m, 1))
    # sanity: blocks that do see the moved atom change
    assert not torch.equal(hop_block(bg, b, 3, 4), hop_block(mg, m, 3, 4))
    assert not torch.equal(onsite_block(b, 2), onsite_block(f, 2))


def test_nonlocal_variant_fails_the_same_check(model):
    """The locality check can fail: with n_j in the node messages, 3 layers reach 3 cutoffs."""
    make_nonlocal(model)
    (bg, b), (mg, m), (fg, f) = _scenario(model)
    assert not torch.equal(hop_block(bg, b, 0, 1), hop_block(mg, m, 0, 1))
    assert not torch.equal(onsite_block(b, 0), onsite_block(f, 0))


@pytest.mark.parametrize("hidden", ["8x0e+6x1o+4x2e", "8x0e+4x1o+4x1e+2x2e+2x2o"])
def test_chunked_inference_equals_full(hidden):
    """Also with unnatural-parity hidden groups (odd SO(2) couplings; states that start at zero)."""
    torch.manual_seed(2)
    cfg = small_config(basis={"Si": "1s1p"}, heads=("H", "S"), n_layers=3, hidden_irreps=hidden)
    cfg.r_cut = {"Si": 4.0}
    model = build_model(cfg)
    g = make_graph(silicon(1), cfg.species, cfg.r_cut)
    with torch.no_grad():
        full = model(g)
        halo = model(g, halo_chunk=40)
        sliced = model(g, edge_chunk=50)
        both = model(g, halo_chunk=60, edge_chunk=30)
    for key in full:
        scale = max(1.0, float(full[key].abs().max()))
        for other in (halo, sliced, both):
            assert (full[key] - other[key]).abs().max() <= 1e-12 * scale


def test_halo_chunks_are_equal_boxes_with_the_least_halo():
    """Cubes of a fixed side left thin slivers at the far faces, each recomputing a full halo;
    the grid now splits the box into equal parts, along as few axes as the chunk count allows."""
    from slem.model.chunked import atom_chunks, chunk_grid

    assert chunk_grid([40.0, 40.0, 40.0], 1, 7.4) == (1, 1, 1)
    assert sorted(chunk_grid([40.0, 40.0, 40.0], 2, 7.4)) == [1, 1, 2]
    # a long axis is cut first: splitting it adds the same halo to a smaller cross-section
    assert chunk_grid([10.0, 10.0, 80.0], 4, 3.0) == (1, 1, 4)
    assert math.prod(chunk_grid([30.0, 30.0, 30.0], 27, 2.0)) >= 27
    pos = torch.rand(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 40.0
    graph = {"pos": pos, "edge_index": torch.zeros((2, 4000 * 80), dtype=torch.long)}
    sizes = [len(c) for c in atom_chunks(graph, 4000 * 80 // 2, 7.4)]
    assert len(sizes) == 2 and min(sizes) > 0.9 * max(sizes)
    chunks = atom_chunks(graph, 4000 * 80 // 8, 7.4)
    assert sorted(torch.cat(chunks).tolist()) == list(range(4000))
