"""Radial basis and cutoff envelope with a per-edge cutoff (r_A + r_B) / 2."""

from __future__ import annotations

import math

import torch
from torch import nn


class BesselBasis(nn.Module):
    """sqrt(2/rc) sin(k_n r / rc) / r with trainable k_n, initialised to n*pi (NequIP/Allegro form)."""

    def __init__(self, n_basis: int = 10, trainable: bool = True):
        super().__init__()
        freqs = math.pi * torch.arange(1, n_basis + 1, dtype=torch.get_default_dtype())
        self.freqs = nn.Parameter(freqs, requires_grad=trainable)

    def forward(self, r: torch.Tensor, r_cut: torch.Tensor) -> torch.Tensor:
        x = (r / r_cut)[:, None]
        return torch.sqrt(2.0 / r_cut)[:, None] * torch.sin(self.freqs * x) / r[:, None]


def polynomial_cutoff(r: torch.Tensor, r_cut: torch.Tensor, p: float = 6.0) -> torch.Tensor:
    """Smooth envelope: 1 at r=0, zero with p continuous derivatives at r_cut, exactly 0 beyond."""
    u = r / r_cut
    env = (
        1.0
        - 0.5 * (p + 1.0) * (p + 2.0) * u.pow(p)
        + p * (p + 2.0) * u.pow(p + 1.0)
        - 0.5 * p * (p + 1.0) * u.pow(p + 2.0)
    )
    return env * (u < 1.0).to(r.dtype)


class Dense(nn.Linear):
    """``nn.Linear`` (same parameters, same files) that adds the bias after the GEMM, in place.

    torch's addmm first copies the broadcast bias into the output, then accumulates the GEMM onto it;
    for the wide, shallow maps here (32 -> 432 per edge) that copy cost more than the GEMM: 1.18 vs
    0.74 ms forward, 3.4 vs 2.7 ms with backward, at 5504 edges on 2 threads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight.T
        return y if self.bias is None else y.add_(self.bias)


class ScalarMLP(nn.Module):
    """Plain SiLU MLP for invariant inputs."""

    def __init__(self, dims: list[int], last_bias: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = k == len(dims) - 2
            layers.append(Dense(a, b, bias=last_bias or not last))
            if not last:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
