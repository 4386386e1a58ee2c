"""Block-error metrics of a model on a list of graphs (validation and test)."""

from __future__ import annotations

import math

import torch

from slem.evaluate.blocks import SCALE, UNIT

from . import model_io
from .dataset import batch_layout, graph_to
from .distributed import DistInfo, all_reduce_sums
from .loss import BlockLoss, block_errors

# H errors are reported in meV, the unit people quote for Hamiltonian accuracy
_SCALE = SCALE
_UNIT = {name: "" if unit == "1" else unit for name, unit in UNIT.items()}  # metric keys: H_mae_meV, S_mae


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    graphs: list[dict],
    loss_fn: BlockLoss,
    operators: list[str],
    species: list[str],
    basis: dict[str, str],
    device: torch.device,
    dist: DistInfo,
    edge_chunk: int | None = None,
) -> dict:
    """Mean loss per frame and MAE/RMSE per operator and block class over all elements.

    Keys look like ``H_mae_meV``, ``H_onsite_rmse_meV``, ``S_mae``. Works on a rank's shard;
    sums are reduced over ranks so every rank returns the same numbers."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {"loss": 0.0, "frames": 0.0}
    classes = [f"{op}{c}" for op in operators for c in ("", "_onsite", "_hopping")]
    for key in classes:
        sums[f"{key}|abs"] = sums[f"{key}|sq"] = sums[f"{key}|n"] = 0.0
    for graph in graphs:
        g = graph_to(graph, device)
        layout = batch_layout(g, species, basis, device) if loss_fn.use_onsite_shift else None
        pred = model_io.forward(model, g, edge_chunk)
        loss, _ = loss_fn(pred, g, layout)
        sums["loss"] += float(loss)
        sums["frames"] += 1
        ref = loss_fn.targets(pred, g, layout)
        for key, (a, s, n) in block_errors(pred, ref, operators).items():
            sums[f"{key}|abs"] += a
            sums[f"{key}|sq"] += s
            sums[f"{key}|n"] += n
    sums = all_reduce_sums(sums, dist, device)
    model.train(was_training)
    out = {"loss": sums["loss"] / max(sums["frames"], 1.0), "frames": int(sums["frames"])}
    for key in classes:
        op = key[0]
        n = max(sums[f"{key}|n"], 1.0)
        unit = f"_{_UNIT[op]}" if _UNIT[op] else ""
        out[f"{key}_mae{unit}"] = sums[f"{key}|abs"] / n * _SCALE[op]
        out[f"{key}_rmse{unit}"] = math.sqrt(sums[f"{key}|sq"] / n) * _SCALE[op]
    return out
