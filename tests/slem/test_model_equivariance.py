"""Exact O(3) equivariance of the SLEM blocks: B -> D_a(g) B D_b(g)^T under rotations and inversion."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3
from test_model_utils import assert_equivariant, make_graph, rand_rot, silicon, small_cluster, small_config

from slem.model import build_model
from slem.model.blocks import BlockAssembler, OrbitalLayout
from slem.model.irreps import Irreps
from slem.model.so2 import SO2Linear
from slem.model.wigner import bond_angles, bond_wigner, to_internal, wigner_from_matrix


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_bond_wigner_matches_e3nn_and_handles_poles():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
    try:
        _check_bond_wigner()
    finally:
        torch.set_default_dtype(previous)


def _check_bond_wigner():
    vec = torch.randn(50, 3, dtype=torch.float64)
    vec[0] = torch.tensor([0.0, 0.0, 1.3], dtype=torch.float64)  # physical +z = e3nn pole
    vec[1] = torch.tensor([0.0, 0.0, -2.0], dtype=torch.float64)
    vec[2] = torch.tensor([1e-12, 0.0, 3.0], dtype=torch.float64)
    internal = to_internal(vec)
    wig = bond_wigner(internal, 4)
    # e3nn's own xyz_to_angles uses acos and loses ~1e-8 near the poles; compare the D factorisation
    # with e3nn's matrix_exp at our (atan2-based) angles, and the angles through the pole check below.
    alpha, beta = bond_angles(internal)
    for l in range(5):
        ref = o3.wigner_D(l, alpha, beta, torch.zeros_like(alpha))
        assert (wig[l] - ref).abs().max() < 1e-12
        eye = torch.eye(2 * l + 1, dtype=torch.float64)
        assert (wig[l] @ wig[l].transpose(1, 2) - eye).abs().max() < 1e-13
        # the rotation maps the pole's harmonics onto the bond's, also for bonds along +-z
        pole = o3.spherical_harmonics(l, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), True)
        sh = o3.spherical_harmonics(l, internal, True)
        assert (torch.einsum("eij,j->ei", wig[l], pole) - sh).abs().max() < 1e-12


def test_wigner_physical_order_is_y_z_x():
    rot = rand_rot()
    assert torch.allclose(wigner_from_matrix(rot, 1), rot[[1, 2, 0]][:, [1, 2, 0]], atol=1e-14)


@pytest.mark.parametrize("inversion", [False, True])
def test_so2_linear_is_o3_equivariant(inversion):
    irr_in = Irreps.parse("4x0e+3x1o+2x2e+2x1e+1x0o+2x3o")
    irr_out = Irreps.parse("3x0e+2x1o+2x1e+2x2e+2x2o+1x0o+2x3o+1x4e")
    layer = SO2Linear(irr_in, irr_out, 5).double()
    vec = torch.randn(9, 3, dtype=torch.float64)
    feats = [torch.randn(9, 2 * l + 1, m, dtype=torch.float64) for m, l, _ in irr_in.groups]
    latent = torch.randn(9, 5, dtype=torch.float64)
    out = layer(feats, bond_wigner(to_internal(vec), 4), latent)
    rot = rand_rot()
    sign = -1.0 if inversion else 1.0
    d = lambda l, p: wigner_from_matrix(rot, l, p, inversion)
    moved = [d(l, p) @ f for f, (_, l, p) in zip(feats, irr_in.groups, strict=True)]
    out_r = layer(moved, bond_wigner(to_internal(sign * vec @ rot.T), 4), latent)
    for a, b, (_, l, p) in zip(out, out_r, irr_out.groups, strict=True):
        assert (d(l, p) @ a - b).abs().max() < 1e-12
    assert max(float(a.abs().max()) for a in out) > 0.1  # not trivially zero


def test_so2_without_parity_rule_breaks_inversion():
    """The even/odd masking is what makes inversion work: dropping it must fail the same check."""
    irr = Irreps.parse("2x0e+2x1o+2x1e")
    layer = SO2Linear(irr, irr, 3).double()
    with torch.no_grad():
        layer.even_1.fill_(1.0)
        layer.even_0.fill_(1.0)
    vec = torch.randn(4, 3, dtype=torch.float64)
    feats = [torch.randn(4, 2 * l + 1, m, dtype=torch.float64) for m, l, _ in irr.groups]
    latent = torch.randn(4, 3, dtype=torch.float64)
    out = layer(feats, bond_wigner(to_internal(vec), 1), latent)
    rot = torch.eye(3, dtype=torch.float64)
    moved = [f * p for f, (_, _, p) in zip(feats, irr.groups, strict=True)]
    out_r = layer(moved, bond_wigner(to_internal(-vec), 1), latent)
    err = max(float((a * p - b).abs().max()) for a, b, (_, _, p) in zip(out, out_r, irr.groups, strict=True))
    assert err > 1e-3
    del rot


def test_block_assembler_roundtrip():
    layout = OrbitalLayout(["Si", "C"], {"Si": "2s2p1d", "C": "1s1p"})
    asm = BlockAssembler(layout, upper=False).double()
    blocks = torch.randn(3, layout.nf, layout.nf, dtype=torch.float64)
    assert (asm(asm.to_irreps(blocks)) - blocks).abs().max() < 1e-12
    sym = BlockAssembler(layout, upper=True).double()
    s = blocks + blocks.transpose(1, 2)
    assert (sym(sym.to_irreps(s)) - s).abs().max() < 1e-12


@pytest.mark.parametrize("inversion", [False, True])
def test_model_equivariant_float64_two_species(inversion):
    cfg = small_config()
    model = build_model(cfg)
    graph = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    assert_equivariant(model, graph, rand_rot(), inversion, atol=1e-10)


def test_model_with_radial_bottleneck_is_equivariant():
    """The latent -> SO(2) weights through a hidden layer (DeePTB's tp_radial_channels) change no symmetry."""
    cfg = small_config(radial_hidden=[8])
    model = build_model(cfg)
    assert isinstance(model.heads["H"].layers[0].edge_update.so2.radial, torch.nn.Module)
    assert not hasattr(model.heads["H"].layers[0].edge_update.so2.radial, "weight")
    graph = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    assert_equivariant(model, graph, rand_rot(), True, atol=1e-10)


@pytest.mark.parametrize("inversion", [False, True])
def test_model_equivariant_periodic_spd(inversion):
    cfg = small_config(basis={"Si": "2s1p1d"}, heads=("H", "S", "D"), n_layers=3)
    cfg.r_cut = {"Si": 4.0}
    model = build_model(cfg)
    graph = make_graph(silicon(1, cubic=False), cfg.species, cfg.r_cut)
    assert_equivariant(model, graph, rand_rot(), inversion, atol=1e-10)


def test_model_equivariant_float32_relative():
    cfg = small_config(dtype="float32")
    model = build_model(cfg)
    graph = make_graph(small_cluster(), cfg.species, cfg.r_cut, dtype=torch.float32)
    assert_equivariant(model, graph, rand_rot(), True, atol=1e-6, rtol=1e-5)


def test_f_basis_runs_and_is_equivariant():
    cfg = small_config(basis={"Si": "1s1p1d1f"}, hidden_irreps="4x0e+4x1o+4x2e+2x3o")
    cfg.r_cut = {"Si": 3.5}
    model = build_model(cfg)
    graph = make_graph(small_cluster().copy()[[0, 1, 3]], cfg.species, cfg.r_cut)
    graph["species"][:] = 0
    out = model(graph)
    assert out["H_onsite"].numel() == 3 * 16 * 16
    assert_equivariant(model, graph, rand_rot(), True, atol=1e-10)


@pytest.mark.parametrize("inversion", [False, True])
def test_spin_channel_heads_are_each_equivariant_and_independent(inversion):
    """A spin-polarised model predicts H_up, H_down, D_up and D_down, each by its own equivariant head."""
    heads = ("H_up", "H_down", "S", "D_up", "D_down")
    cfg = small_config(basis={"Si": "2s1p1d"}, heads=heads, n_layers=2)
    cfg.r_cut = {"Si": 4.0}
    model = build_model(cfg)
    graph = make_graph(silicon(1, cubic=False), cfg.species, cfg.r_cut)
    assert_equivariant(model, graph, rand_rot(), inversion, atol=1e-10)
    with torch.no_grad():
        out = model(graph)
    assert {f"{h}_{part}" for h in heads for part in ("onsite", "hopping")} <= set(out)
    assert (out["H_up_hopping"] - out["H_down_hopping"]).abs().max() > 1e-3
