"""Initial two-body embedding: invariant latent, hidden edge state V_ij and node state n_i."""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from slem.model.irreps import Feats, Irreps, scatter_feats
from slem.model.norm import SeparableLayerNorm
from slem.model.radial import BesselBasis, ScalarMLP


class InitLayer(nn.Module):
    """x_ij = f_c MLP(Z_i, Z_j, B(r)); V_ij = sum_l w_l(x) Y_l(r); n_i = norm(sum_j f_c V_ij / sqrt(<N>)).

    Only groups of natural parity (0e, 1o, 2e, ...) can be built from Y_l; others start at zero.
    Edge states are returned in the bond frame (m-major, see slem/model/so2.py), where Y_l(r) is
    sqrt(2l+1) at m = 0 and zero elsewhere; the node sum uses the lab-frame Y_l.
    """

    def __init__(self, n_species: int, irreps: Irreps, latent_dim: int, latent_hidden: list[int],
                 n_radial: int, avg_num_neighbors: float):
        super().__init__()
        self.irreps = irreps
        self.bessel = BesselBasis(n_radial)
        self.latent_mlp = ScalarMLP([2 * n_species + n_radial, *latent_hidden, latent_dim])
        self.natural = [(mul, l) for mul, l, p in irreps.groups if p == (-1) ** l]
        self.env_weights = nn.Linear(latent_dim, sum(mul for mul, _ in self.natural))
        self.norm_node = SeparableLayerNorm(irreps)
        self.norm_hidden = SeparableLayerNorm(irreps)
        self.inv_sqrt_avg = 1.0 / math.sqrt(avg_num_neighbors)

    def forward(self, onehot: torch.Tensor, edge_index: torch.Tensor, vec_internal: torch.Tensor,
                length: torch.Tensor, r_cut: torch.Tensor, fcut: torch.Tensor, n_nodes: int):
        centre, neigh = edge_index
        basis = self.bessel(length, r_cut)
        raw = self.latent_mlp(torch.cat([onehot[centre], onehot[neigh], basis], dim=1))
        latent = fcut[:, None] * raw
        sh = o3.spherical_harmonics(list(range(self.irreps.lmax + 1)), vec_internal, normalize=True,
                                    normalization="component")
        sh_l = torch.split(sh, [2 * l + 1 for l in range(self.irreps.lmax + 1)], dim=1)
        w_hidden = torch.split(self.env_weights(raw), [m for m, _ in self.natural], dim=1)
        w_edge = torch.split(self.env_weights(latent), [m for m, _ in self.natural], dim=1)
        hidden: Feats = []
        edge: Feats = []
        edge_lab: Feats = []
        k = 0
        for mul, l, p in self.irreps.groups:
            if p == (-1) ** l:
                pole = raw.new_zeros(2 * l + 1)
                pole[0] = math.sqrt(2 * l + 1)
                hidden.append(pole[:, None] * w_hidden[k][:, None, :])
                edge.append(pole[:, None] * w_edge[k][:, None, :])
                edge_lab.append(sh_l[l][:, :, None] * w_edge[k][:, None, :])
                k += 1
            else:
                # separate tensors: chunked inference may overwrite edge states in place
                hidden.append(raw.new_zeros((raw.shape[0], 2 * l + 1, mul)))
                edge.append(raw.new_zeros((raw.shape[0], 2 * l + 1, mul)))
                edge_lab.append(edge[-1])
        node = [f * self.inv_sqrt_avg for f in scatter_feats(edge_lab, centre, n_nodes)]
        return latent, self.norm_hidden(hidden), edge, self.norm_node(node)
