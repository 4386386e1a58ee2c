"""Equivariant linear maps on grouped irreps features."""

from __future__ import annotations

import math

import torch
from torch import nn

from slem.model.irreps import Feats, Irreps


class EquivariantLinear(nn.Module):
    """Channel mixing within each (l, p); bias on 0e only. Output groups with no input stay zero."""

    def __init__(self, irreps_in: Irreps, irreps_out: Irreps, bias: bool = True):
        super().__init__()
        self.irreps_in, self.irreps_out = irreps_in, irreps_out
        self.weights = nn.ParameterList()
        self.route: list[int | None] = []
        for mul, l, p in irreps_out.groups:
            k = irreps_in.index(l, p)
            self.route.append(k)
            if k is not None:
                mul_in = irreps_in.groups[k][0]
                self.weights.append(nn.Parameter(torch.randn(mul, mul_in) / math.sqrt(mul_in)))
        k0 = irreps_out.index(0, 1)
        self.bias_group = k0 if bias else None
        self.bias = nn.Parameter(torch.zeros(irreps_out.groups[k0][0])) if (bias and k0 is not None) else None

    def forward(self, feats: Feats, factor: float = 1.0) -> Feats:
        """``factor`` scales the output through the weights, not through a pass over every feature."""
        out: Feats = []
        w = iter(self.weights)
        ref = feats[0]
        for g, ((mul, l, _), k) in enumerate(zip(self.irreps_out.groups, self.route, strict=True)):
            if k is None:
                y = ref.new_zeros((ref.shape[0], 2 * l + 1, mul))
            else:
                weight = next(w) if factor == 1.0 else factor * next(w)
                y = feats[k] @ weight.T  # one GEMM over batch x (2l+1) rows
            if g == self.bias_group and self.bias is not None:
                y = y + (self.bias if factor == 1.0 else factor * self.bias)
            out.append(y)
        return out


class LatentScale(nn.Module):
    """Per-edge, per-channel scale (and 0e shift) generated linearly from the invariant latent."""

    def __init__(self, irreps: Irreps, latent_dim: int):
        super().__init__()
        self.irreps = irreps
        self.n_scalar = irreps.mul(0, 1)
        self.k0 = irreps.index(0, 1)
        self.proj = nn.Linear(latent_dim, irreps.num_channels + self.n_scalar)

    def forward(self, feats: Feats, latent: torch.Tensor, factor: float = 1.0) -> Feats:
        """``factor`` multiplies the output, folded into the (latent -> coefficient) map."""
        if factor == 1.0:
            coeffs = self.proj(latent)
        else:
            coeffs = torch.nn.functional.linear(latent, factor * self.proj.weight, factor * self.proj.bias)
        # splits, not slices: a slice's backward zero-fills the full coefficient gradient per group
        scales = torch.split(coeffs, [mul for mul, _, _ in self.irreps.groups] + [self.n_scalar], dim=1)
        out: Feats = []
        for g, scale in enumerate(scales[:-1]):
            y = feats[g] * scale[:, None, :]
            if g == self.k0:
                y = y + scales[-1][:, None, :]
            out.append(y)
        return out
