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
        self.k0_in = self.irreps_in.index(0, 1)

    def forward(self, feats: Feats) -> Feats:
        gates = torch.sigmoid(feats[self.k0_in][:, 0, self.n_scalar :])
        out: Feats = []
        start = 0
        for (mul, l, p), k_in in zip(self.irreps_out.groups, self._in_index(), strict=True):
            x = feats[k_in]
            if l == 0 and p == 1:
                out.append(torch.nn.functional.silu(x[:, :, : self.n_scalar]))
            elif l == 0:
                out.append(torch.tanh(x))
            else:
                out.append(x * gates[:, None, start : start + mul])
                start += mul
        return out

    def _in_index(self) -> list[int]:
        return [self.irreps_in.index(l, p) for _, l, p in self.irreps_out.groups]
