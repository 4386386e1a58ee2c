"""Separable layer norm: layer norm on 0e channels, one shared RMS for all other irreps.

The RMS is balanced over degrees (each (l, p) group contributes its mean square with equal
weight), so high-l groups with many components do not dominate. Everything is per row
(per edge or per node), which keeps the model strictly local and lets inference be chunked.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from slem.model.irreps import Feats, Irreps


class SeparableLayerNorm(nn.Module):
    def __init__(self, irreps: Irreps, eps: float = 1e-5):
        super().__init__()
        self.irreps = irreps
        self.eps = eps
        self.k0 = irreps.index(0, 1)
        self.weights = nn.ParameterList(nn.Parameter(torch.ones(mul)) for mul, _, _ in irreps.groups)
        self.bias = nn.Parameter(torch.zeros(irreps.mul(0, 1))) if self.k0 is not None else None

    def forward(self, feats: Feats) -> Feats:
        others = [g for g in range(len(feats)) if g != self.k0]
        scaled = iter(balanced_rms([feats[g] for g in others], [self.weights[g] for g in others], self.eps)
                      if others else [])
        out: Feats = []
        for g, f in enumerate(feats):
            if g == self.k0:
                # (f - mean) / sqrt(biased variance + eps) * w + b over the channels: torch's fused kernel
                out.append(torch.nn.functional.layer_norm(f, (f.shape[2],), self.weights[g], self.bias,
                                                          self.eps))
            else:
                out.append(next(scaled))
        return out


def balanced_rms(feats: Feats, weights: list[torch.Tensor], eps: float) -> Feats:
    """f_g * w_g / sqrt(mean_g <f_g^2> + eps), <.> the mean over a row's components and channels."""
    return list(_BalancedRMS.apply(eps, len(feats), *feats, *weights))


class _BalancedRMS(torch.autograd.Function):
    """One autograd node with a hand-written backward: four passes over each group's features, where
    autograd's chain (square, mean, stack, rsqrt, two products and their reductions) took about seven.

    With inv = (ms + eps)^(-1/2), ms = (1/G) sum_h <f_h^2> over n_h elements per row, and
    t = sum_h sum grad_h f_h w_h per row:
    d/df_g = grad_g inv w_g - inv^3 t f_g / (G n_g);
    d/dw_g = sum over rows and components of grad_g f_g inv."""

    @staticmethod
    def forward(ctx, eps, n_groups, *tensors):
        feats, weights = tensors[:n_groups], tensors[n_groups:]
        ms = sum(torch.linalg.vector_norm(f, dim=(1, 2)).square() / (f.shape[1] * f.shape[2]) for f in feats)
        inv = torch.rsqrt(ms / n_groups + eps)
        ctx.save_for_backward(inv, *tensors)
        ctx.n_groups = n_groups
        return tuple(f * (inv[:, None, None] * w) for f, w in zip(feats, weights, strict=True))

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        inv, *tensors = ctx.saved_tensors
        n_groups = ctx.n_groups
        feats, weights = tensors[:n_groups], tensors[n_groups:]
        # per group, sum over components of grad * f: (N, mul)
        products = [(g * f).sum(1) for g, f in zip(grads, feats, strict=True)]
        t = sum(p @ w for p, w in zip(products, weights, strict=True))
        coef = -t * inv.pow(3) / n_groups
        grad_feats = []
        for g, f, w in zip(grads, feats, weights, strict=True):
            grad_f = g * (inv[:, None, None] * w)
            grad_feats.append(grad_f.addcmul_(f, (coef / (f.shape[1] * f.shape[2]))[:, None, None]))
        grad_weights = [inv @ p if ctx.needs_input_grad[2 + n_groups + k] else None
                        for k, p in enumerate(products)]
        return None, None, *grad_feats, *grad_weights
