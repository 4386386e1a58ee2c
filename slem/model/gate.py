"""Gate nonlinearity: SiLU on even scalars, tanh on odd scalars, sigmoid gates on l > 0."""

from __future__ import annotations

import torch
from torch import nn

from slem.model.irreps import Feats, Irreps


def gate_input_irreps(irreps_out: Irreps) -> Irreps:
    """What the layer before a gate must produce: ``irreps_out`` plus one 0e gate per l > 0 channel."""
    n_gated = sum(mul for mul, l, _ in irreps_out.groups if l > 0)
    return irreps_out + Irreps.build([(n_gated, 0, 1)])


class Gate(nn.Module):
    def __init__(self, irreps_out: Irreps):
        super().__init__()
        self.irreps_out = irreps_out
        self.irreps_in = gate_input_irreps(irreps_out)
        self.n_scalar = irreps_out.mul(0, 1)
        self.gated_muls = [mul for mul, l, _ in irreps_out.groups if l > 0]
        self.n_gated = sum(self.gated_muls)
        self.k0_in = self.irreps_in.index(0, 1)

    def forward(self, feats: Feats) -> Feats:
        # splits, not slices: a slice's backward zero-fills a full-size gradient and copies into it,
        # a split's backward is one concatenation
        scalars, gate_pre = torch.split(feats[self.k0_in].squeeze(1), [self.n_scalar, self.n_gated], dim=1)
        gates = torch.split(torch.sigmoid(gate_pre), self.gated_muls, dim=1)
        out: Feats = []
        gated = iter(gates)
        for (_, l, p), k_in in zip(self.irreps_out.groups, self.in_index(), strict=True):
            if l == 0 and p == 1:
                out.append(torch.nn.functional.silu(scalars)[:, None, :])
            elif l == 0:
                out.append(torch.tanh(feats[k_in]))
            else:
                out.append(feats[k_in] * next(gated)[:, None, :])
        return out

    def in_index(self) -> list[int]:
        return [self.irreps_in.index(l, p) for _, l, p in self.irreps_out.groups]
