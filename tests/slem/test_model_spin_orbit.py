"""The spin-orbit head: H_so_x, H_so_y, H_so_z rotate as l_i (x) l_j (x) pseudovector, are antisymmetric,
and make a time-reversal-symmetric spinor H."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_utils import make_graph, per_atom_blocks, rand_rot, silicon, small_cluster, small_config

from slem.data.operators import spin_orbit_names
from slem.data.orbitals import parse_shells
from slem.model import build_model
from slem.model.wigner import orbital_wigner
from slem.spinor import PAULI, spinor_matrix

HEADS = ("H", "S", *spin_orbit_names("H"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _blocks(out: dict, name: str, graph: dict, norb: dict[int, int]):
    species = graph["species"].tolist()
    ei = graph["edge_index"]
    if name.endswith("_onsite"):
        rows = cols = species
    else:
        rows, cols = [species[i] for i in ei[0].tolist()], [species[j] for j in ei[1].tolist()]
    return per_atom_blocks(out[name], [norb[r] for r in rows], [norb[c] for c in cols]), rows, cols


def _assert_spin_orbit_equivariant(model, graph, rot: torch.Tensor, inversion: bool, atol: float) -> float:
    """Under x -> g x (g = +-R), H blocks go to D H D^T and the spin-orbit triple to
    H_so_a -> sum_b R_ab D H_so_b D^T: a pseudovector does not change sign under inversion."""
    sign = -1.0 if inversion else 1.0
    moved = dict(graph, pos=sign * graph["pos"] @ rot.T, edge_shift=sign * graph["edge_shift"] @ rot.T)
    with torch.no_grad():
        out, out_r = model(graph), model(moved)
    shells = {k: parse_shells(model.config.basis[s]) for k, s in enumerate(model.config.species)}
    d = {k: orbital_wigner(rot.double(), sh, inversion) for k, sh in shells.items()}
    norb = {k: m.shape[0] for k, m in d.items()}
    worst = 0.0
    for part in ("onsite", "hopping"):
        before = [_blocks(out, f"{n}_{part}", graph, norb)[0] for n in spin_orbit_names("H")]
        after = [_blocks(out_r, f"{n}_{part}", graph, norb)[0] for n in spin_orbit_names("H")]
        rows, cols = _blocks(out, f"H_{part}", graph, norb)[1:]
        for index, (r, c) in enumerate(zip(rows, cols, strict=True)):
            x = torch.stack([before[a][index] for a in range(3)])
            expect = torch.einsum("ab,bij->aij", rot.double(), d[r] @ x @ d[c].T)
            got = torch.stack([after[a][index] for a in range(3)])
            worst = max(worst, float((expect - got).abs().max()))
    assert worst <= atol, f"spin-orbit equivariance error {worst:.3e}"
    return worst


@pytest.mark.parametrize("inversion", [False, True])
def test_spin_orbit_head_is_equivariant_float64(inversion):
    cfg = small_config(basis={"Si": "2s1p1d"}, heads=HEADS, n_layers=2)
    cfg.r_cut = {"Si": 4.0}
    model = build_model(cfg)
    assert "H_so" in model.heads and model.heads["H_so"].vector
    graph = make_graph(silicon(1, cubic=False), cfg.species, cfg.r_cut)
    _assert_spin_orbit_equivariant(model, graph, rand_rot(), inversion, atol=1e-10)


def test_spin_orbit_head_two_species_cluster():
    cfg = small_config(heads=HEADS)
    model = build_model(cfg)
    graph = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    _assert_spin_orbit_equivariant(model, graph, rand_rot(), True, atol=1e-10)


def test_spin_orbit_blocks_are_antisymmetric_and_time_reversal_symmetric():
    cfg = small_config(basis={"Si": "2s1p1d"}, heads=HEADS, n_layers=2)
    cfg.r_cut = {"Si": 4.0}
    model = build_model(cfg)
    graph = make_graph(silicon(1, cubic=False), cfg.species, cfg.r_cut)
    with torch.no_grad():
        out = model(graph)
    norb = {0: 10}
    reverse = {}
    ei, shift = graph["edge_index"].T.tolist(), graph["edge_shift"].tolist()
    for e, ((i, j), r) in enumerate(zip(ei, shift, strict=True)):
        reverse[(i, j, *np.round(r, 6))] = e
    for name in spin_orbit_names("H"):
        onsite, _, _ = _blocks(out, f"{name}_onsite", graph, norb)
        assert all(torch.allclose(b, -b.T, atol=1e-12) for b in onsite)
        assert max(float(b.abs().max()) for b in onsite) > 1e-3
        hop, _, _ = _blocks(out, f"{name}_hopping", graph, norb)
        for e, ((i, j), r) in enumerate(zip(ei, shift, strict=True)):
            partner = reverse[(j, i, *np.round(-np.asarray(r), 6))]
            assert torch.allclose(hop[e], -hop[partner].T, atol=1e-12)
    # one atom's onsite spinor block: hermitian, and time reversal (i sigma_y K) leaves it unchanged,
    # so its levels come in Kramers pairs
    scalar = _blocks(out, "H_onsite", graph, norb)[0][0].numpy()
    vector = np.stack([_blocks(out, f"{n}_onsite", graph, norb)[0][0].numpy() for n in spin_orbit_names("H")])
    m = spinor_matrix(scalar, vector)
    theta = np.kron(1j * PAULI[1], np.eye(10))
    assert np.allclose(theta @ m.conj() @ np.linalg.inv(theta), m, atol=1e-12)
    levels = np.linalg.eigvalsh(m)
    assert np.allclose(levels[0::2], levels[1::2], atol=1e-10)
