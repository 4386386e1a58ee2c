"""SLEM model: invariances, Hermiticity, overlap positivity, fitting, config and file round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_utils import make_graph, per_atom_blocks, silicon, small_cluster, small_config

from slem.model import (
    ModelConfigError,
    ModelFileError,
    SlemConfig,
    build_model,
    check_overlap_positive,
    fit_rescale,
    load_model,
    save_model,
)
from slem.model.edges import GraphError, reverse_edges
from slem.model.irreps import Irreps
from slem.model.linear import EquivariantLinear, LatentScale


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _si_model(heads=("H", "S"), basis="1s1p", r_cut=4.0, **kw):
    cfg = small_config(basis={"Si": basis}, heads=heads, **kw)
    cfg.r_cut = {"Si": r_cut}
    return build_model(cfg)


def test_translation_invariance():
    model = _si_model()
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    moved = dict(g, pos=g["pos"] + torch.tensor([0.3, -1.7, 2.9], dtype=torch.float64))
    with torch.no_grad():
        a, b = model(g), model(moved)
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-11


def test_permutation_equivariance():
    cfg = small_config()
    model = build_model(cfg)
    g = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    n, n_edges = g["pos"].shape[0], g["edge_index"].shape[1]
    perm = torch.randperm(n)  # new atom k is old atom perm[k]
    inv = torch.argsort(perm)
    eperm = torch.randperm(n_edges)
    pg = {
        "pos": g["pos"][perm], "species": g["species"][perm], "batch": g["batch"],
        "edge_index": inv[g["edge_index"][:, eperm]], "edge_shift": g["edge_shift"][eperm],
    }
    with torch.no_grad():
        a, b = model(g), model(pg)
    norb = model.layout.norb[g["species"]].tolist()
    ei = g["edge_index"].tolist()
    for name in ("H", "S"):
        on_a = per_atom_blocks(a[f"{name}_onsite"], norb, norb)
        on_b = per_atom_blocks(b[f"{name}_onsite"], [norb[p] for p in perm], [norb[p] for p in perm])
        for k in range(n):
            assert torch.allclose(on_b[k], on_a[perm[k]], atol=1e-12)
        hop_a = per_atom_blocks(a[f"{name}_hopping"], [norb[i] for i in ei[0]], [norb[j] for j in ei[1]])
        rows = [norb[ei[0][e]] for e in eperm.tolist()]
        cols = [norb[ei[1][e]] for e in eperm.tolist()]
        hop_b = per_atom_blocks(b[f"{name}_hopping"], rows, cols)
        for k, e in enumerate(eperm.tolist()):
            assert torch.allclose(hop_b[k], hop_a[e], atol=1e-12)


def test_hermiticity_exact_periodic():
    model = _si_model(heads=("H", "S", "D"), basis="2s1p1d")
    g = make_graph(silicon(1, cubic=False), ["Si"], {"Si": 4.0})
    rev = reverse_edges(g["edge_index"], g["edge_shift"])
    assert torch.equal(rev[rev], torch.arange(rev.numel()))
    with torch.no_grad():
        out = model(g)
    norb = 10
    for name in ("H", "S", "D"):
        onsite = out[f"{name}_onsite"].view(-1, norb, norb)
        hop = out[f"{name}_hopping"].view(-1, norb, norb)
        assert torch.equal(onsite, onsite.transpose(1, 2))
        assert torch.equal(hop, hop[rev].transpose(1, 2))
        assert float(hop.abs().max()) > 0


def test_missing_reverse_edge_is_a_clear_error():
    model = _si_model()
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    g["edge_index"], g["edge_shift"] = g["edge_index"][:, 1:], g["edge_shift"][1:]
    with pytest.raises(GraphError, match="no reverse edge"):
        model(g)


def test_reverse_edges_from_integer_shifts_match_the_cartesian_route():
    from slem.data.graph import build_graph, collate

    graphs = [build_graph(silicon(1, seed=s, cubic=False), ["Si"], {"Si": 6.0}, basis={"Si": "1s1p"})
              for s in range(2)]
    batch = collate(graphs)
    fast = reverse_edges(batch["edge_index"], batch["edge_shift"], cell_shift=batch["cell_shift"])
    assert torch.equal(fast, reverse_edges(batch["edge_index"], batch["edge_shift"]))
    ei, shift = batch["edge_index"], batch["cell_shift"]
    assert torch.equal(ei[:, fast], ei.flip(0)) and torch.equal(shift[fast], -shift)
    with pytest.raises(GraphError, match="no reverse edge"):
        reverse_edges(ei[:, 1:], batch["edge_shift"][1:], cell_shift=shift[1:])


def bloch(onsite, hop, g, norb, k):
    """S(k) = sum_R S(R) exp(i k.R) from flat single-species blocks (k Cartesian, 1/A)."""
    n = g["pos"].shape[0]
    s = torch.zeros(n * norb, n * norb, dtype=torch.complex128)
    for a in range(n):
        s[a * norb : (a + 1) * norb, a * norb : (a + 1) * norb] = onsite.view(n, norb, norb)[a]
    phase = torch.exp(1j * (g["edge_shift"] @ k))
    for e, (i, j) in enumerate(g["edge_index"].T.tolist()):
        s[i * norb : (i + 1) * norb, j * norb : (j + 1) * norb] += phase[e] * hop.view(-1, norb, norb)[e]
    return s


def test_overlap_positive_after_fit_and_check_raises():
    g = make_graph(silicon(1, cubic=False), ["Si"], {"Si": 6.0})
    teacher = _si_model(heads=("S",), r_cut=6.0)
    with torch.no_grad():
        teacher.heads["S"].scale.fill_(0.02)
        g.update(teacher(g))
    student = _si_model(heads=("S",), r_cut=6.0)
    assert fit_rescale(student, [g]) == {"S": 1}
    with torch.no_grad():
        out = student(g)
    for k in torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.5], [0.6, 0.6, 0.0]], dtype=torch.float64):
        s_k = bloch(out["S_onsite"], out["S_hopping"], g, 4, k)
        assert torch.allclose(s_k, s_k.conj().T, atol=1e-14)
        check_overlap_positive(s_k)
    bad = torch.eye(4, dtype=torch.float64)
    bad[0, 1] = bad[1, 0] = 1.5
    with pytest.raises(ValueError, match="not positive definite"):
        check_overlap_positive(bad)


def test_fit_rescale_matches_target_statistics():
    model = _si_model(heads=("H",))
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    n, e = g["pos"].shape[0], g["edge_index"].shape[1]
    onsite = torch.randn(n, 4, 4, dtype=torch.float64)
    onsite = onsite + onsite.transpose(1, 2)
    onsite[:, 0, 0] += 7.0  # s-s onsite scalar has a large mean
    hop = torch.randn(e, 4, 4, dtype=torch.float64) * 0.5
    g["H_onsite"], g["H_hopping"] = onsite.reshape(-1), hop.reshape(-1)
    fit_rescale(model, [g])
    head = model.heads["H"]
    shift = head.rescale_node.shift[0]
    assert abs(float(shift[0]) - float(onsite[:, 0, 0].mean())) < 1e-10
    assert float(head.rescale_edge.scale_0.max()) > 0.1


def test_float32_and_float64_switch():
    model = _si_model()
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    with torch.no_grad():
        ref = model(g)["H_hopping"]
        model32 = model.to(torch.float32)
        g32 = {k: (v.float() if v.is_floating_point() else v) for k, v in g.items()}
        out = model32(g32)["H_hopping"]
    assert out.dtype == torch.float32
    assert (out.double() - ref).abs().max() < 1e-4 * max(1.0, float(ref.abs().max()))


def test_train_step_reduces_loss():
    model = _si_model(heads=("H",))
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    with torch.no_grad():
        target = {k: v * 0.5 + 0.1 for k, v in model(g).items()}
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(8):
        out = model(g)
        loss = sum((out[k] - target[k]).pow(2).mean() for k in out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_config_roundtrip_and_errors():
    cfg = small_config()
    assert SlemConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelConfigError, match="no basis"):
        SlemConfig(species=["Si", "C"], basis={"Si": "1s1p"}, r_cut={"Si": 5.0, "C": 5.0})
    with pytest.raises(ModelConfigError, match="unknown key 'model.bogus'"):
        SlemConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ModelConfigError, match="unknown key 'model.num_layers'; did you mean 'n_layers'"):
        SlemConfig.from_dict({**cfg.to_dict(), "num_layers": 2})
    with pytest.raises(ModelConfigError, match="unknown head"):
        SlemConfig(species=["Si"], basis={"Si": "1s"}, r_cut={"Si": 5.0}, heads=["X"])
    assert SlemConfig(species=["Si"], basis={"Si": "1s"}, r_cut=5.0).r_cut == {"Si": 5.0}
    for bad in ([0], ["wide"], [1.5], ["32"]):
        with pytest.raises(ModelConfigError, match="radial_hidden' must be a list of positive integer"):
            SlemConfig(species=["Si"], basis={"Si": "1s"}, r_cut=5.0, radial_hidden=bad)
    with pytest.raises(ModelConfigError, match="'model.radial_hidden' must be a list, got 32"):
        SlemConfig(species=["Si"], basis={"Si": "1s"}, r_cut=5.0, radial_hidden=32)
    with pytest.raises(ModelConfigError, match="'model.n_layers' must be int, got 'three'"):
        SlemConfig(species=["Si"], basis={"Si": "1s"}, r_cut=5.0, n_layers="three")
    assert SlemConfig.from_dict({**cfg.to_dict(), "radial_hidden": []}).radial_hidden == []


def test_output_factors_fold_into_the_weights():
    """The residual weights are applied through the weights of the maps; same as scaling the output."""
    irreps = Irreps.parse("4x0e+3x1o+2x2e")
    feats = [torch.randn(7, 2 * l + 1, mul, dtype=torch.float64) for mul, l, _ in irreps.groups]
    latent = torch.randn(7, 5, dtype=torch.float64)
    linear = EquivariantLinear(irreps, irreps).double()
    scale = LatentScale(irreps, 5).double()
    with torch.no_grad():
        linear.bias.normal_()
    pairs = [(linear(feats, 0.3), linear(feats)), (scale(feats, latent, 0.3), scale(feats, latent))]
    for folded, plain in pairs:
        for a, b in zip(folded, plain, strict=True):
            assert torch.allclose(a, 0.3 * b, rtol=1e-14, atol=1e-15)


def test_save_load_roundtrip_and_basis_check(tmp_path):
    model = _si_model()
    g = make_graph(silicon(1), ["Si"], {"Si": 4.0})
    path = tmp_path / "model.pt"
    save_model(path, model, {"training_data_sha256": "abc"})
    loaded, meta = load_model(path, expected_basis={"Si": "1s1p"})
    assert meta["basis"] == {"Si": "1s1p"} and meta["training_data_sha256"] == "abc"
    assert meta["slem_version"] and meta["r_cut"] == {"Si": 4.0}
    with torch.no_grad():
        a, b = model(g), loaded(g)
    for k in a:
        assert torch.equal(a[k], b[k])
    with pytest.raises(ModelFileError, match="different orbital basis"):
        load_model(path, expected_basis={"Si": "2s2p1d"})
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "junk.pt")


def test_species_absent_orbitals_two_bases():
    cfg = small_config(basis={"Si": "2s2p1d", "C": "1s1p"})
    model = build_model(cfg)
    g = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    with torch.no_grad():
        out = model(g)
    norb = np.array([13 if s == 0 else 4 for s in g["species"].tolist()])
    ei = g["edge_index"].numpy()
    assert out["H_onsite"].numel() == int((norb**2).sum())
    assert out["H_hopping"].numel() == int((norb[ei[0]] * norb[ei[1]]).sum())


def test_atoms_without_neighbours_get_onsite_blocks_only():
    """Atoms farther apart than the cutoff have no edges: onsite blocks only, no hoppings."""
    from ase import Atoms

    model = build_model(small_config(basis={"Si": "1s1p"}, heads=("H", "S")))
    g = make_graph(Atoms("Si2", positions=[[0, 0, 0], [20, 0, 0]], pbc=False), ["Si"], {"Si": 5.0})
    assert g["edge_index"].shape[1] == 0
    with torch.no_grad():
        out, sliced = model(g), model(g, edge_chunk=8)
    assert out["H_onsite"].shape == (2 * 16,) and out["H_hopping"].numel() == 0
    assert torch.equal(out["H_onsite"], sliced["H_onsite"])
    assert out["S_onsite"].shape == (2 * 16,) and bool(torch.isfinite(out["S_onsite"]).all())
    # the training path (autograd on) takes the same empty edge set
    trained = model(g)
    trained["H_onsite"].sum().backward()
    assert torch.allclose(trained["H_onsite"], out["H_onsite"]) and trained["H_hopping"].numel() == 0
