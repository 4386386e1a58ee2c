"""Block losses: ½(MAE + RMSE) per block class (onsite, hopping), averaged per operator,
optionally with an onsite shift that removes the constant-potential gauge of H and an
eigenvalue loss at a few k-points.

Blocks are flat packed arrays: ``X_onsite`` holds every atom's (n_i, n_i) block row-major in
atom order, ``X_hopping`` every edge's (n_i, n_j) block in edge order, as the graph and
the model produce them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch


def half_mae_rmse(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} does not match target {tuple(ref.shape)}")
    if pred.numel() == 0:
        return pred.sum() * 0.0
    diff = pred - ref
    return 0.5 * (diff.abs().mean() + torch.sqrt((diff * diff).mean() + 1e-30))


def weighted_half_mae_rmse(pred: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """½(MAE + RMSE) with per-element weights (normalised here, so only their ratios matter)."""
    if pred.shape != ref.shape or weight.shape != ref.shape:
        raise ValueError(
            f"prediction {tuple(pred.shape)}, target {tuple(ref.shape)} "
            f"and weights {tuple(weight.shape)} differ"
        )
    if pred.numel() == 0:
        return pred.sum() * 0.0
    w = weight / weight.sum().clamp_min(1e-30)
    diff = pred - ref
    return 0.5 * ((w * diff.abs()).sum() + torch.sqrt((w * diff * diff).sum() + 1e-30))


def block_norm_weights(ref: torch.Tensor, sizes: torch.Tensor, floor: float = 1.0) -> torch.Tensor:
    """Per packed element: RMS of its block's target plus ``floor`` times the mean block RMS.

    Far pairs are many and nearly zero, so an unweighted loss is won by predicting them and lets the
    few large short-bond blocks (which set the bands) keep errors of ~0.1 eV; weighting by the block's
    own magnitude makes those count, and the floor keeps the small far blocks (whose errors add up
    coherently in H(k)) from being ignored."""
    sizes = sizes.to(torch.long)
    if int(sizes.sum()) != ref.numel():
        raise ValueError(
            f"block sizes sum to {int(sizes.sum())} but the packed target has {ref.numel()} elements"
        )
    seg = torch.repeat_interleave(torch.arange(len(sizes), device=ref.device), sizes)
    sq = torch.zeros(len(sizes), dtype=ref.dtype, device=ref.device).index_add_(0, seg, ref.detach() ** 2)
    rms = torch.sqrt(sq / sizes.clamp_min(1).to(ref.dtype))
    mean = rms[sizes > 0].mean() if bool((sizes > 0).any()) else rms.new_tensor(1.0)
    return (rms + floor * mean)[seg]


def packed_block_sizes(graph: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Elements per block of the packed onsite and hopping arrays, from ``norb`` and ``edge_index``."""
    norb = graph["norb"].to(torch.long)
    edge_index = graph["edge_index"].to(torch.long).reshape(2, -1)
    return {"onsite": norb * norb, "hopping": norb[edge_index[0]] * norb[edge_index[1]]}


@dataclass
class ElementLayout:
    """Per packed element: which frame it belongs to, and whether it is an onsite diagonal."""

    onsite_frame: torch.Tensor  # (n_onsite_elements,) frame index
    onsite_diag: torch.Tensor  # (n_onsite_elements,) bool
    hopping_frame: torch.Tensor  # (n_hopping_elements,) frame index
    n_frames: int


def element_layout(
    norb: np.ndarray, edge_index: np.ndarray, batch: np.ndarray, device: torch.device | str = "cpu"
) -> ElementLayout:
    """Layout of the packed arrays from orbitals per atom (N,), edges (2, E) and frame of each atom (N,)."""
    norb = np.asarray(norb, dtype=np.int64)
    batch = np.asarray(batch, dtype=np.int64)
    edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    onsite_frame = np.repeat(batch, norb * norb)
    diag = np.concatenate([np.eye(n, dtype=bool).ravel() for n in norb]) if len(norb) else np.zeros(0, bool)
    sizes = norb[edge_index[0]] * norb[edge_index[1]]
    hopping_frame = np.repeat(batch[edge_index[0]], sizes)
    return ElementLayout(
        onsite_frame=torch.as_tensor(onsite_frame, device=device),
        onsite_diag=torch.as_tensor(diag, device=device),
        hopping_frame=torch.as_tensor(hopping_frame, device=device),
        n_frames=int(batch.max()) + 1 if len(batch) else 0,
    )


def onsite_shift(
    h_pred: tuple[torch.Tensor, torch.Tensor],
    h_ref: tuple[torch.Tensor, torch.Tensor],
    s_ref: tuple[torch.Tensor, torch.Tensor],
    layout: ElementLayout,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference H shifted per frame by mu*S, mu = mean onsite-diagonal (H_pred - H_ref)/S.

    H and H + mu*S have the same eigenvectors and eigenvalues moved by mu, so the model is not
    penalised for the arbitrary zero of the potential. mu carries no gradient."""
    on_p, _ = h_pred
    on_r, hop_r = h_ref
    s_on, s_hop = s_ref
    d = layout.onsite_diag
    frame = layout.onsite_frame[d]
    delta = ((on_p[d] - on_r[d]) / s_on[d]).detach()
    total = torch.zeros(layout.n_frames, dtype=delta.dtype, device=delta.device).index_add_(0, frame, delta)
    count = torch.zeros_like(total).index_add_(0, frame, torch.ones_like(delta))
    mu = total / count.clamp(min=1)
    return on_r + mu[layout.onsite_frame] * s_on, hop_r + mu[layout.hopping_frame] * s_hop


class BlockLoss:
    """Loss over the requested operators; returns (total, parts) with parts keyed like 'H_onsite'."""

    def __init__(
        self,
        operators: Sequence[str],
        weights: Mapping[str, float] | None = None,
        use_onsite_shift: bool = False,
        block_weighting: str = "none",
    ):
        if block_weighting not in ("none", "norm"):
            raise ValueError(f"block_weighting must be 'none' or 'norm', got {block_weighting!r}")
        self.block_weighting = block_weighting
        self.operators = list(operators)
        self.weights = {op: float((weights or {}).get(op, 1.0)) for op in self.operators}
        if use_onsite_shift and not {"H", "S"} <= set(self.operators):
            raise ValueError("onsite_shift needs both H and S in 'operators' (the shift is mu*S)")
        self.use_onsite_shift = use_onsite_shift

    def targets(
        self,
        pred: Mapping[str, torch.Tensor],
        graph: Mapping[str, torch.Tensor],
        layout: ElementLayout | None,
    ) -> dict[str, torch.Tensor]:
        ref = {f"{op}_{c}": graph[f"{op}_{c}"] for op in self.operators for c in ("onsite", "hopping")}
        if self.use_onsite_shift:
            if layout is None:
                raise ValueError("onsite_shift needs the element layout of the batch")
            ref["H_onsite"], ref["H_hopping"] = onsite_shift(
                (pred["H_onsite"], pred["H_hopping"]),
                (ref["H_onsite"], ref["H_hopping"]),
                (graph["S_onsite"], graph["S_hopping"]),
                layout,
            )
        return ref

    def __call__(
        self,
        pred: Mapping[str, torch.Tensor],
        graph: Mapping[str, torch.Tensor],
        layout: ElementLayout | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ref = self.targets(pred, graph, layout)
        parts: dict[str, float] = {}
        total = 0.0
        sizes = packed_block_sizes(graph) if self.block_weighting == "norm" else None
        for op in self.operators:
            per_class = []
            for c in ("onsite", "hopping"):
                key = f"{op}_{c}"
                if sizes is None:
                    value = half_mae_rmse(pred[key].to(ref[key].dtype), ref[key])
                else:
                    weight = block_norm_weights(ref[key], sizes[c])
                    value = weighted_half_mae_rmse(pred[key].to(ref[key].dtype), ref[key], weight)
                parts[key] = float(value.detach())
                per_class.append(value)
            op_loss = sum(per_class) / len(per_class)
            parts[op] = float(op_loss.detach())
            total = total + self.weights[op] * op_loss
        norm = sum(self.weights.values()) or 1.0
        return total / norm, parts


def block_errors(
    pred: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor], operators: Sequence[str]
) -> dict[str, tuple[float, float, int]]:
    """Sums for error statistics: key -> (sum |d|, sum d^2, count), for onsite, hopping and all.

    Sums rather than means so they can be accumulated over batches and ranks."""
    out = {}
    for op in operators:
        both = []
        for c in ("onsite", "hopping"):
            d = pred[f"{op}_{c}"].detach().to(torch.float64) - ref[f"{op}_{c}"].detach().to(torch.float64)
            both.append(d)
            out[f"{op}_{c}"] = (float(d.abs().sum()), float((d * d).sum()), d.numel())
        d = torch.cat(both)
        out[op] = (float(d.abs().sum()), float((d * d).sum()), d.numel())
    return out
