"""``training.edge_chunk`` in training: the remedy ``SlemTrainWorkChain`` applies after an out-of-memory
error at batch size 1. The training step runs each layer's per-edge work in slices whose intermediates are
recomputed during backward (activation checkpointing): the same loss and gradients, less kept for backward.
"""

from __future__ import annotations

import pytest
import torch
from test_model_utils import make_graph, silicon, small_config
from test_train_run import tiny_config

import slem.model.layer as layer_module
from slem.model import build_model
from slem.train.config import validate_config
from slem.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _model_and_graph():
    torch.manual_seed(3)
    cfg = small_config(basis={"Si": "1s1p"}, heads=("H", "S"), n_layers=2)
    cfg.r_cut = {"Si": 4.0}
    return build_model(cfg), make_graph(silicon(1), cfg.species, cfg.r_cut)


def _loss(out: dict) -> torch.Tensor:
    return sum((value**2).sum() for value in out.values())


def _loss_and_gradients(model, graph, edge_chunk):
    model.zero_grad(set_to_none=True)
    loss = _loss(model(graph, edge_chunk=edge_chunk))
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_chunked_forward_backward_gives_the_unchunked_loss_and_gradients():
    model, graph = _model_and_graph()
    n_edges = graph["edge_index"].shape[1]
    assert n_edges > 3 * 37  # several slices, the last one shorter
    loss, grads = _loss_and_gradients(model, graph, None)
    for chunk in (37, n_edges // 2):
        chunked_loss, chunked_grads = _loss_and_gradients(model, graph, chunk)
        assert torch.allclose(chunked_loss, loss, rtol=1e-12, atol=0.0)
        assert chunked_grads.keys() == grads.keys() and len(grads) > 20
        for name, grad in grads.items():
            assert torch.allclose(chunked_grads[name], grad, rtol=1e-10, atol=1e-12), name


def _bytes_saved_for_backward(model, graph, edge_chunk) -> int:
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _loss(model(graph, edge_chunk=edge_chunk))
    return sum(storages.values())


def test_chunked_training_keeps_less_for_backward():
    """What autograd holds between forward and backward, i.e. the peak of a training step: slicing without
    recomputation kept every slice's intermediates (it raised the peak RSS, 272 -> 305 MB on 6048 edges)."""
    model, graph = _model_and_graph()
    full = _bytes_saved_for_backward(model, graph, None)
    chunked = _bytes_saved_for_backward(model, graph, 64)
    assert chunked < 0.5 * full, (chunked, full)


def _run(tmp_path, name, monkeypatch, **training) -> tuple[dict, list[int | None], int]:
    """Two training steps: the final weights, the edge_chunk each layer call with autograd on received and
    how many slices ran under activation checkpointing."""
    seen: list[int | None] = []
    slices = []
    forward, checkpoint = layer_module.SlemLayer.forward, layer_module.checkpoint

    def spy_forward(self, *args, **kwargs):
        if torch.is_grad_enabled():
            seen.append(args[8] if len(args) > 8 else kwargs.get("edge_chunk"))
        return forward(self, *args, **kwargs)

    def spy_checkpoint(*args, **kwargs):
        slices.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(layer_module.SlemLayer, "forward", spy_forward)
    monkeypatch.setattr(layer_module, "checkpoint", spy_checkpoint)
    cfg = validate_config(tiny_config(tmp_path / name, **training))
    trainer = Trainer(cfg, progress=False)
    trainer.setup()
    try:
        for _ in range(2):
            trainer._train_step()
    finally:
        trainer.logger.close()
        monkeypatch.undo()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}, seen, len(slices)


def test_training_step_honours_edge_chunk(tmp_path, monkeypatch):
    """The config key reaches every layer of the training step and switches on the sliced, recomputed path;
    the weights after two optimizer steps are those of the unchunked run. Without the key nothing changes."""
    plain, plain_seen, plain_slices = _run(tmp_path, "plain", monkeypatch)
    assert plain_seen and set(plain_seen) == {None} and plain_slices == 0
    chunked, chunked_seen, chunked_slices = _run(tmp_path, "chunked", monkeypatch, edge_chunk=40)
    assert chunked_seen and set(chunked_seen) == {40} and chunked_slices > 2 * len(chunked_seen)
    assert chunked.keys() == plain.keys()
    for key, value in plain.items():
        assert torch.allclose(chunked[key], value, rtol=1e-5, atol=1e-7), key
