"""SO(2) convolution (eSCN): rotate into the bond frame, linear map per |m|, rotate back.

In the bond frame (bond along e3nn's pole), a tensor product with the bond's spherical harmonics
only couples equal |m|. For each pair of input/output irreps the coupling is either
"even" -- p_in p_out (-1)^(l_in + l_out) = +1, the CG paths with l_in + l_f + l_out even -- which
acts identically on the +m and -m components (W1, also at m = 0), or "odd", which maps
+m -> -m and -m -> +m with opposite signs (W2, absent at m = 0). Masking the weights by this rule
makes the layer exactly O(3)-equivariant including inversion; without it only SO(3) holds.
For m > 0 the map on the (+m, -m) pair is out(+m) = A x(+m) - B x(-m), out(-m) = B x(+m) + A x(-m).
Inputs with l = 0 enter at m = 0 like any other input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from slem.model.irreps import Feats, Irreps


class SO2Linear(nn.Module):
    def __init__(self, irreps_in: Irreps, irreps_out: Irreps, latent_dim: int):
        super().__init__()
        self.irreps_in, self.irreps_out = irreps_in, irreps_out
        self.mmax = min(irreps_in.lmax, irreps_out.lmax)
        self.w1 = nn.ParameterList()
        self.w2 = nn.ParameterList()
        self.in_groups: list[list[int]] = []
        self.out_groups: list[list[int]] = []
        self.n_in: list[int] = []
        for m in range(self.mmax + 1):
            gin = [g for g, (_, l, _) in enumerate(irreps_in.groups) if l >= m]
            gout = [g for g, (_, l, _) in enumerate(irreps_out.groups) if l >= m]
            even = torch.cat([
                torch.cat([
                    torch.full((irreps_out.groups[o][0], irreps_in.groups[i][0]),
                               float(self._is_even(irreps_in.groups[i], irreps_out.groups[o])))
                    for i in gin
                ], dim=1)
                for o in gout
            ], dim=0)
            n_in = even.shape[1]
            self.in_groups.append(gin)
            self.out_groups.append(gout)
            self.n_in.append(n_in)
            self.register_buffer(f"even_{m}", even, persistent=False)
            self.w1.append(nn.Parameter(torch.randn_like(even) / math.sqrt(n_in)))
            if m > 0:
                self.w2.append(nn.Parameter(torch.randn_like(even) / math.sqrt(n_in)))
        self.radial = nn.Linear(latent_dim, sum(self.n_in))
        k0 = irreps_out.index(0, 1)
        self.bias_slot = None if k0 is None else self.out_groups[0].index(k0)
        self.bias = nn.Parameter(torch.zeros(irreps_out.mul(0, 1))) if k0 is not None else None

    @staticmethod
    def _is_even(gin: tuple[int, int, int], gout: tuple[int, int, int]) -> bool:
        return gin[2] * gout[2] * (-1) ** (gin[1] + gout[1]) == 1

    def forward(self, feats: Feats, wigner: list[torch.Tensor], latent: torch.Tensor) -> Feats:
        """``feats`` in the lab frame; ``wigner[l]`` (E, 2l+1, 2l+1) maps the bond frame to the lab."""
        rotated = [f if l == 0 else torch.matmul(f, wigner[l]) for f, (_, l, _) in zip(
            feats, self.irreps_in.groups, strict=True)]
        radial = torch.split(self.radial(latent), self.n_in, dim=1)
        out_p: list[torch.Tensor] = []
        out_n: list[torch.Tensor] = []
        ls_in = [l for _, l, _ in self.irreps_in.groups]
        for m in range(self.mmax + 1):
            even = getattr(self, f"even_{m}")
            xp = torch.cat([rotated[g][:, :, ls_in[g] + m] for g in self.in_groups[m]], dim=1) * radial[m]
            a = self.w1[m] * even
            if m == 0:
                y = xp @ a.T
                if self.bias is not None:
                    y = y + self._bias_row()
                out_p.append(y)
                out_n.append(y)
                continue
            xn = torch.cat([rotated[g][:, :, ls_in[g] - m] for g in self.in_groups[m]], dim=1) * radial[m]
            b = self.w2[m - 1] * (1.0 - even)
            out_p.append(xp @ a.T - xn @ b.T)
            out_n.append(xp @ b.T + xn @ a.T)
        return self._assemble(out_p, out_n, wigner, latent)

    def _bias_row(self) -> torch.Tensor:
        muls = [self.irreps_out.groups[g][0] for g in self.out_groups[0]]
        parts = [torch.zeros(n, dtype=self.bias.dtype, device=self.bias.device) for n in muls]
        parts[self.bias_slot] = self.bias
        return torch.cat(parts)

    def _assemble(self, out_p, out_n, wigner, latent) -> Feats:
        n_edges = latent.shape[0]
        result: Feats = []
        for g, (mul, l, _) in enumerate(self.irreps_out.groups):
            comps: list[torch.Tensor | None] = [None] * (2 * l + 1)
            for m in range(min(l, self.mmax) + 1):
                slot = self.out_groups[m].index(g)
                start = sum(self.irreps_out.groups[o][0] for o in self.out_groups[m][:slot])
                comps[l + m] = out_p[m][:, start : start + mul]
                comps[l - m] = out_n[m][:, start : start + mul]
            zero = latent.new_zeros((n_edges, mul))
            frame = torch.stack([c if c is not None else zero for c in comps], dim=-1)
            result.append(frame if l == 0 else torch.matmul(frame, wigner[l].transpose(1, 2)))
        return result
