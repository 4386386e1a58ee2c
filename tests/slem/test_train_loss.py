import numpy as np
import pytest
import torch

from slem.train.loss import BlockLoss, block_errors, element_layout, half_mae_rmse, onsite_shift


def test_half_mae_rmse_value():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ref = torch.tensor([1.0, 2.0, 3.0, 0.0])
    # MAE = 1, RMSE = sqrt(16/4) = 2
    assert float(half_mae_rmse(pred, ref)) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="does not match"):
        half_mae_rmse(pred, ref[:3])


def _graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    norb = np.array([4, 1])  # one 1s1p atom, one 1s atom, in two frames
    edge_index = np.array([[0, 1], [1, 0]])
    out = {"edge_index": torch.tensor(edge_index), "batch": torch.tensor([0, 0])}
    n_on, n_hop = int((norb**2).sum()), int((norb[edge_index[0]] * norb[edge_index[1]]).sum())
    for op in "HS":
        out[f"{op}_onsite"] = torch.randn(n_on, generator=g, dtype=torch.float64)
        out[f"{op}_hopping"] = torch.randn(n_hop, generator=g, dtype=torch.float64)
    return out, norb, edge_index


def test_block_loss_zero_for_exact_prediction_and_averages_classes():
    graph, _, _ = _graph()
    loss_fn = BlockLoss(["H", "S"])
    pred = {k: v.clone() for k, v in graph.items() if "_" in k and k[0] in "HS"}
    loss, parts = loss_fn(pred, graph)
    assert float(loss) == pytest.approx(0.0, abs=1e-12)
    pred["H_onsite"] = pred["H_onsite"] + 1.0  # error 1 everywhere in one class of one operator
    loss, parts = loss_fn(pred, graph)
    assert parts["H_onsite"] == pytest.approx(1.0)
    assert parts["H"] == pytest.approx(0.5)
    assert float(loss) == pytest.approx(0.25)  # mean over H and S


def test_onsite_shift_removes_constant_potential():
    graph, norb, edge_index = _graph(1)
    # make S onsite diagonal 1, as for normalised orbitals
    layout = element_layout(norb, edge_index, np.array([0, 0]))
    graph["S_onsite"][layout.onsite_diag] = 1.0
    mu = 0.37
    pred = {
        "H_onsite": graph["H_onsite"] + mu * graph["S_onsite"],
        "H_hopping": graph["H_hopping"] + mu * graph["S_hopping"],
        "S_onsite": graph["S_onsite"].clone(),
        "S_hopping": graph["S_hopping"].clone(),
    }
    plain = BlockLoss(["H", "S"])
    shifted = BlockLoss(["H", "S"], use_onsite_shift=True)
    assert float(plain(pred, graph)[0]) > 0.1
    assert float(shifted(pred, graph, layout)[0]) == pytest.approx(0.0, abs=1e-12)
    on, hop = onsite_shift(
        (pred["H_onsite"], pred["H_hopping"]),
        (graph["H_onsite"], graph["H_hopping"]),
        (graph["S_onsite"], graph["S_hopping"]),
        layout,
    )
    torch.testing.assert_close(on, pred["H_onsite"])
    with pytest.raises(ValueError, match="needs both H and S"):
        BlockLoss(["H"], use_onsite_shift=True)


def test_block_errors_sums():
    graph, _, _ = _graph()
    pred = {k: v + 2.0 for k, v in graph.items() if "_" in k and k[0] in "HS"}
    errs = block_errors(pred, graph, ["H"])
    a, s, n = errs["H"]
    assert a == pytest.approx(2.0 * n) and s == pytest.approx(4.0 * n)
    assert n == errs["H_onsite"][2] + errs["H_hopping"][2]


def test_loss_gradient_flows():
    graph, _, _ = _graph()
    pred = {k: (v + 0.1).requires_grad_() for k, v in graph.items() if "_" in k and k[0] in "HS"}
    loss, _ = BlockLoss(["H", "S"], weights={"S": 2.0})(pred, graph)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in pred.values())


def test_batch_eigenvalues_match_frame_bands():
    """The eigenvalue loss's Bloch sums (bond-vector gauge) give the bands of slem.bands."""
    from pathlib import Path

    from slem.bands import band_energies
    from slem.data.frame import read_frames
    from slem.data.graph import build_graph, collate
    from slem.train.data_checks import infer_cutoffs
    from slem.train.eigen_loss import batch_eigenvalues, kpoints_for

    frames = read_frames(Path(__file__).parents[1] / "data" / "si8_frames.h5", [0, 1])
    cutoffs = infer_cutoffs(frames, ["Si"])
    graphs = [build_graph(f, ["Si"], cutoffs, torch.float64, ("H", "S")) for f in frames]
    # every stored pair with a non-zero overlap is an edge, so the graph holds the frame's operators
    energies = batch_eigenvalues(collate(graphs), collate(graphs), n_kpoints=3, seed=1)
    for frame, e in zip(frames, energies, strict=True):
        kpts = kpoints_for(frame.cell, 3, 1)
        ref = band_energies(frame, kpts, cartesian=True)
        np.testing.assert_allclose(e.numpy(), ref, atol=1e-9)


def test_block_norm_weighting_counts_large_blocks_more():
    from slem.train.loss import block_norm_weights, weighted_half_mae_rmse

    # two 1x1 hopping blocks: a short bond (target 1.0) and a far pair (target 0.0)
    ref = torch.tensor([1.0, 0.0], dtype=torch.float64)
    sizes = torch.tensor([1, 1])
    w = block_norm_weights(ref, sizes)  # rms + mean rms: 1.5 and 0.5
    assert w.tolist() == pytest.approx([1.5, 0.5])
    err_short = weighted_half_mae_rmse(ref + torch.tensor([0.1, 0.0], dtype=torch.float64), ref, w)
    err_far = weighted_half_mae_rmse(ref + torch.tensor([0.0, 0.1], dtype=torch.float64), ref, w)
    assert float(err_short) > 2.0 * float(err_far)  # weight ratio 3: MAE part x3, RMSE part x sqrt(3)
    # equal weights reduce to the plain loss
    pred = ref + torch.tensor([0.3, -0.1], dtype=torch.float64)
    ones = torch.ones(2, dtype=torch.float64)
    assert float(weighted_half_mae_rmse(pred, ref, ones)) == pytest.approx(float(half_mae_rmse(pred, ref)))
    with pytest.raises(ValueError, match="block sizes sum"):
        block_norm_weights(ref, torch.tensor([1, 2]))


def test_block_loss_norm_weighting_uses_graph_block_sizes():
    graph, norb, _ = _graph()
    graph["norb"] = torch.tensor(norb)
    pred = {k: v.clone() for k, v in graph.items() if "_" in k and k[0] in "HS"}
    weighted = BlockLoss(["H", "S"], block_weighting="norm")
    assert float(weighted(pred, graph)[0]) == pytest.approx(0.0, abs=1e-12)
    pred["H_onsite"] = pred["H_onsite"] + 1.0  # a uniform error is weighted to the same value
    assert weighted(pred, graph)[1]["H_onsite"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="block_weighting"):
        BlockLoss(["H"], block_weighting="pair")


def test_canonical_eigvalsh_drops_near_null_overlap_directions():
    from slem.train.eigen_loss import canonical_eigvalsh, cholesky_eigvalsh

    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h = a + a.T
    b = torch.randn(6, 6, generator=g, dtype=torch.float64)
    s = b @ b.T + 6 * torch.eye(6, dtype=torch.float64)
    # well-conditioned S: nothing dropped, same as the Cholesky route
    assert torch.allclose(canonical_eigvalsh(h, s, 1e-6), cholesky_eigvalsh(h, s), atol=1e-10)
    # a rank-deficient S (two identical orbitals): one direction dropped, Cholesky impossible
    c = torch.eye(6, dtype=torch.float64)
    c[5] = c[4]
    s_dep = c @ s @ c.T
    assert canonical_eigvalsh(h, s_dep, 1e-8).shape == (5,)
    with pytest.raises(RuntimeError):
        cholesky_eigvalsh(h, s_dep)


def test_fermi_band_eigenvalue_loss_scores_only_the_bands_around_the_fermi_level():
    """``fermi_bands`` N: the loss is that of the N highest occupied and N lowest empty bands by count."""
    from pathlib import Path

    from slem.data.frame import read_frames
    from slem.data.graph import build_graph, collate
    from slem.train.data_checks import infer_cutoffs
    from slem.train.eigen_loss import batch_eigenvalues, eigenvalue_loss, occupied_band_count

    frames = read_frames(Path(__file__).parents[1] / "data" / "si8_frames.h5", [0, 1])
    cutoffs = infer_cutoffs(frames, ["Si"])
    graphs = [build_graph(f, ["Si"], cutoffs, torch.float64, ("H", "S")) for f in frames]
    for frame, graph in zip(frames, graphs, strict=True):
        graph["n_occupied"] = torch.tensor([occupied_band_count(frame)])
    graph = collate(graphs)
    assert graph["n_occupied"].tolist() == [16, 16]  # Si8: 32 electrons
    g = torch.Generator().manual_seed(0)
    pred = {key: graph[key] + 0.05 * torch.randn(graph[key].shape, generator=g, dtype=torch.float64)
            for key in ("H_onsite", "H_hopping")}
    model = {**graph, **pred}
    e_pred, e_ref = (batch_eigenvalues(blocks, graph, 3, 1) for blocks in (model, graph))
    pairs = zip(e_pred, e_ref, strict=True)
    expected = torch.stack([half_mae_rmse(p[:, 14:18], r[:, 14:18]) for p, r in pairs]).mean()
    window = eigenvalue_loss(pred, graph, 3, 1, fermi_bands=2)
    assert float(window) == pytest.approx(float(expected), rel=1e-12)
    every_band = eigenvalue_loss(pred, graph, 3, 1)
    assert abs(float(every_band) - float(window)) > 1e-3  # the window is not the whole spectrum


def test_eigenvalue_loss_with_reference_bands_solved_once_per_frame_equals_the_plain_path():
    """The trainer solves each training frame's reference bands once, alone, and hands them back per batch:
    the loss and its gradient must equal those of solving the batch's reference every step."""
    from pathlib import Path

    from slem.data.frame import read_frames
    from slem.data.graph import build_graph, collate
    from slem.train.data_checks import infer_cutoffs
    from slem.train.eigen_loss import eigenvalue_loss, occupied_band_count, reference_eigenvalues

    frames = read_frames(Path(__file__).parents[1] / "data" / "si8_frames.h5", [0, 1])
    cutoffs = infer_cutoffs(frames, ["Si"])
    graphs = [build_graph(f, ["Si"], cutoffs, torch.float64, ("H", "S")) for f in frames]
    for frame, graph in zip(frames, graphs, strict=True):
        graph["n_occupied"] = torch.tensor([occupied_band_count(frame)])
    once = [reference_eigenvalues(collate([g]), 3, 1, 0.01)[0] for g in graphs]
    graph = collate(graphs)
    g = torch.Generator().manual_seed(0)
    for fermi_bands in (0, 3):
        losses, grads = [], []
        for reference in (None, once):
            pred = {key: (graph[key] + 0.05 * torch.randn(graph[key].shape, generator=g.manual_seed(1),
                                                          dtype=torch.float64)).requires_grad_()
                    for key in ("H_onsite", "H_hopping")}
            loss = eigenvalue_loss(pred, graph, 3, 1, 0.01, fermi_bands, reference=reference)
            loss.backward()
            losses.append(float(loss.detach()))
            grads.append(torch.cat([pred[k].grad for k in ("H_onsite", "H_hopping")]))
        assert losses[0] > 1e-3 and losses[1] == pytest.approx(losses[0], rel=1e-10)
        assert torch.allclose(grads[1], grads[0], rtol=1e-8, atol=1e-12)


def test_occupied_band_count_needs_an_electron_count():
    import dataclasses
    from pathlib import Path

    from slem.data.frame import read_frames
    from slem.train.eigen_loss import occupied_band_count

    frame = read_frames(Path(__file__).parents[1] / "data" / "si8_frames.h5", [0])[0]
    no_count = dataclasses.replace(frame, metadata={"label": "bare"})
    assert occupied_band_count(no_count) == 16  # Tr(D S) of the frame's D
    # the loss diagonalises the scalar H alone, so a spin-orbit frame still fills two electrons per band
    zero = np.zeros_like(frame.operators["H"])
    spin_orbit = dataclasses.replace(frame, operators={**frame.operators, "H_so_x": zero, "H_so_y": zero,
                                                       "H_so_z": zero})
    assert occupied_band_count(spin_orbit) == 16
    bare = dataclasses.replace(no_count, operators={k: v for k, v in frame.operators.items() if k != "D"})
    with pytest.raises(ValueError, match="bare: .*n_electrons.*eigenvalue_fermi_bands: 0"):
        occupied_band_count(bare)
