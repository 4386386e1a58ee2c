"""Distance-dependent hopping rescale with a two-centre baseline (slem/model/bond_rescale.py)."""

from __future__ import annotations

import pytest
import torch
from test_model_utils import assert_equivariant, make_graph, rand_rot, silicon, small_cluster, small_config

from slem.model import ModelConfigError, build_model, fit_rescale, load_model, save_model
from slem.model.bond_rescale import BondRescale
from slem.model.rescale import Rescale


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _zero_network(head):
    """Make the head's network output zero, leaving only the fitted statistics (the baseline)."""
    features = head.features

    def zero(geom, edge_chunk=None):
        node, edge = features(geom, edge_chunk)
        return [0 * f for f in node], [0 * f for f in edge]

    head.features = zero


def _two_centre_teacher():
    """A randomly initialised Slater-Koster overlap head: its blocks are two-centre by construction."""
    cfg = small_config(basis={"Si": "1s1p1d"}, heads=("S",))
    cfg.r_cut = {"Si": 4.5}
    teacher = build_model(cfg)

    def targets(graph):
        with torch.no_grad():
            out = teacher(graph)
        return out["S_onsite"], out["S_hopping"]

    return targets


def _si_head_model(knots: int):
    cfg = small_config(basis={"Si": "1s1p1d"}, heads=("H",), bond_rescale_knots=knots)
    cfg.r_cut = {"Si": 4.5}
    return build_model(cfg)


def test_two_centre_operator_is_reproduced_by_the_baseline_alone():
    _two_centre_targets = _two_centre_teacher()
    graphs = [make_graph(silicon(1, rattle=0.15, seed=s), ["Si"], {"Si": 4.5}) for s in range(3)]
    for g in graphs:
        g["H_onsite"], g["H_hopping"] = _two_centre_targets(g)
    test = make_graph(silicon(1, rattle=0.15, seed=7), ["Si"], {"Si": 4.5})
    onsite, hopping = _two_centre_targets(test)
    errors = {}
    for knots in (0, 24):
        model = _si_head_model(knots)
        fit_rescale(model, graphs)
        _zero_network(model.heads["H"])
        with torch.no_grad():
            pred = model(test)["H_hopping"]
        errors[knots] = float((pred - hopping).abs().mean() / hopping.abs().mean())
    # one mean per pair type cannot follow the distance dependence; the two-centre baseline can
    assert errors[0] > 0.5
    assert errors[24] < 0.02, errors  # measured: 1.00 and 0.006


def test_fitted_baseline_keeps_exact_equivariance():
    cfg = small_config(basis={"Si": "1s1p1d", "C": "1s1p"}, heads=("H",), bond_rescale_knots=24)
    model = build_model(cfg)
    assert isinstance(model.heads["H"].rescale_edge, BondRescale)
    graph = make_graph(small_cluster(), cfg.species, cfg.r_cut)
    n_on = model(graph)["H_onsite"].numel()
    n_hop = model(graph)["H_hopping"].numel()
    graph["H_onsite"] = torch.randn(n_on, dtype=torch.float64)
    graph["H_hopping"] = torch.randn(n_hop, dtype=torch.float64)
    fit_rescale(model, [graph])
    base = [b for name, b in model.heads["H"].rescale_edge.named_buffers() if name.startswith("base_")]
    assert max(float(b.abs().max()) for b in base) > 1e-3  # the baseline is actually in play
    for inversion in (False, True):
        assert_equivariant(model, graph, rand_rot(), inversion, atol=1e-10)


def test_distances_outside_the_training_range_are_clamped():
    model = _si_head_model(8)
    graph = make_graph(silicon(1, rattle=0.05), ["Si"], {"Si": 4.5})
    graph["H_onsite"], graph["H_hopping"] = _two_centre_teacher()(graph)
    fit_rescale(model, [graph])
    squeezed = make_graph(silicon(1, rattle=0.05), ["Si"], {"Si": 4.5})
    squeezed["pos"] = squeezed["pos"] * 0.8
    squeezed["edge_shift"] = squeezed["edge_shift"] * 0.8
    with torch.no_grad():
        out = model(squeezed)["H_hopping"]
    assert torch.isfinite(out).all()


def test_knots_are_validated_and_the_choice_survives_save_and_load(tmp_path):
    with pytest.raises(ModelConfigError, match="bond_rescale_knots"):
        small_config(bond_rescale_knots=1)
    assert isinstance(build_model(small_config(heads=("H",))).heads["H"].rescale_edge, BondRescale)
    assert isinstance(build_model(small_config(heads=("H",), bond_rescale_knots=0)).heads["H"].rescale_edge,
                      Rescale)
    model = build_model(small_config(heads=("H",), bond_rescale_knots=6))
    save_model(tmp_path / "m.pt", model)
    loaded, _ = load_model(tmp_path / "m.pt")
    assert isinstance(loaded.heads["H"].rescale_edge, BondRescale)
    assert loaded.heads["H"].rescale_edge.n_knots == 6


def test_model_files_written_before_the_option_load_with_per_pair_statistics(tmp_path):
    save_model(tmp_path / "old.pt", build_model(small_config(heads=("H",), bond_rescale_knots=0)))
    payload = torch.load(tmp_path / "old.pt", weights_only=False)
    del payload["config"]["bond_rescale_knots"]  # as such files were written
    torch.save(payload, tmp_path / "old.pt")
    loaded, _ = load_model(tmp_path / "old.pt")
    assert isinstance(loaded.heads["H"].rescale_edge, Rescale)


@pytest.mark.parametrize("knots", [0, 8])
def test_unseen_pair_gets_statistics_mixed_from_its_like_pairs(knots, capsys):
    """Training on Si and on C alone leaves Si-C without edges; a held-out SiC would otherwise meet a
    network at unit scale (about 1 eV per hopping)."""
    cfg = small_config(basis={"Si": "1s1p", "C": "1s1p"}, heads=("H",), bond_rescale_knots=knots)
    cfg.r_cut = {"Si": 4.5, "C": 4.5}
    model = build_model(cfg)
    carbon = silicon(1, rattle=0.1, seed=2)
    carbon.set_chemical_symbols(["C"] * len(carbon))
    carbon.set_cell(carbon.cell * 0.66, scale_atoms=True)
    graphs = [make_graph(a, cfg.species, cfg.r_cut) for a in (silicon(1, rattle=0.1), carbon)]
    for scale, g in zip((1.0, 3.0), graphs, strict=True):
        n_on, n_hop = (model(g)[k].numel() for k in ("H_onsite", "H_hopping"))
        g["H_onsite"] = scale * torch.randn(n_on, dtype=torch.float64)
        g["H_hopping"] = scale * torch.randn(n_hop, dtype=torch.float64)
    fit_rescale(model, graphs)
    assert "no training edges for Si-C, C-Si" in capsys.readouterr().err
    rescale, n = model.heads["H"].rescale_edge, 2
    rows = (lambda t: slice(t * knots, (t + 1) * knots)) if knots else (lambda t: t)
    si_si, c_c, si_c = 0 * n + 0, 1 * n + 1, 0 * n + 1
    for g in range(len(rescale.irreps.groups)):
        scale = getattr(rescale, f"scale_{g}")
        assert torch.allclose(scale[rows(si_c)], (scale[rows(si_si)] * scale[rows(c_c)]).sqrt())
        assert not torch.allclose(scale[rows(si_c)], torch.ones_like(scale[rows(si_c)]))
    mixed = make_graph(silicon(1, rattle=0.1, seed=3), cfg.species, cfg.r_cut)
    mixed["species"][::2] = 1
    with torch.no_grad():
        assert torch.isfinite(model(mixed)["H_hopping"]).all()
