"""Separable layer norm: layer norm on 0e channels, one shared RMS for all other irreps.

The RMS is balanced over degrees (each (l, p) group contributes its mean square with equal
weight), so high-l groups with many components do not dominate. Everything is per row
(per edge or per node), which keeps the model strictly local and lets inference be chunked.
"""

from __future__ import annotations

import torch
from torch import nn

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
        others = [f for g, f in enumerate(feats) if g != self.k0]
        if others:
            ms = torch.stack([f.pow(2).mean(dim=(1, 2)) for f in others], dim=0).mean(0)
            inv = torch.rsqrt(ms + self.eps)[:, None, None]  # (N, 1, 1)
        out: Feats = []
        for g, f in enumerate(feats):
            if g == self.k0:
                centred = f - f.mean(dim=2, keepdim=True)
                y = centred * torch.rsqrt(centred.pow(2).mean(dim=2, keepdim=True) + self.eps)
                y = y * self.weights[g] + self.bias
            else:
                # one pass over f: the per-row factor and per-channel weight meet in an (N, 1, mul) tensor
                y = f * (inv * self.weights[g])
            out.append(y)
        return out
