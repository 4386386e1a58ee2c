"""One SLEM layer: hidden edge state, latent, edge (hopping) features, node (onsite) features.

Strict locality: node i aggregates messages built from [n_i || V_ij] only, and V_ij itself is
updated from [n_i || V_ij] and pair geometry. Node j's features enter only the edge features
e_ij = SO2([n_i || V_ij || n_j]), which are never sent back to the nodes. So n_i depends on the
cutoff sphere of i, and e_ij on the spheres of i and j, for any number of layers.

Edge states (V_ij, e_ij) live in their own bond frame throughout: only n_i and n_j are rotated in
and the node messages rotated out, 3 rotations per layer instead of 10 (see slem/model/so2.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from slem.model.gate import Gate
from slem.model.gated_rows import gated_rows, plan_rows
from slem.model.irreps import Feats, Irreps, add_feats, index_feats, scatter_feats
from slem.model.linear import EquivariantLinear, LatentScale
from slem.model.norm import SeparableLayerNorm
from slem.model.radial import ScalarMLP
from slem.model.so2 import SO2Linear, to_bond_frame, to_lab_frame

# Fixed residual mix of DeePTB/Allegro: sigmoid(0)=0.5 between new and old, normalised.
RES_OLD = 1.0 / math.sqrt(1.25)
RES_NEW = 0.5 * RES_OLD


class GatedSO2(nn.Module):
    """SO2 -> gate -> linear -> per-channel latent scale/shift."""

    def __init__(self, irreps_in: Irreps, irreps_out: Irreps, latent_dim: int,
                 radial_hidden: list[int] | None = None):
        super().__init__()
        self.gate = Gate(irreps_out)
        self.so2 = SO2Linear(irreps_in, self.gate.irreps_in, latent_dim, radial_hidden)
        self.post = EquivariantLinear(irreps_out, irreps_out)
        self.scale = LatentScale(irreps_out, latent_dim)
        self.rows_plan = plan_rows(self.gate, self.so2)

    def forward(self, parts: list[tuple[Irreps, Feats]], latent: torch.Tensor,
                scale_latent: torch.Tensor | None = None, factor: float = 1.0) -> Feats:
        """Bond frame in and out; ``parts`` are concatenated channel-wise (``SO2Linear.bond_frame_parts``).
        ``factor`` multiplies the result, folded into the latent scale: no extra pass over the edges."""
        # the gate reads the SO(2) map's per-m outputs directly: no assembled copy in between
        y = self.post(gated_rows(self.rows_plan, self.so2.bond_frame_rows(parts, latent)))
        return self.scale(y, latent if scale_latent is None else scale_latent, factor)


class SlemLayer(nn.Module):
    def __init__(self, n_species: int, node_in: Irreps, hidden_in: Irreps, edge_in: Irreps,
                 hidden_out: Irreps, node_out: Irreps, edge_out: Irreps, latent_dim: int,
                 latent_hidden: list[int], avg_num_neighbors: float, radial_hidden: list[int] | None = None):
        super().__init__()
        self.node_in, self.hidden_in, self.edge_in = node_in, hidden_in, edge_in
        self.hidden_out, self.node_out, self.edge_out = hidden_out, node_out, edge_out
        self.norm_node = SeparableLayerNorm(node_in)
        self.norm_hidden_in = SeparableLayerNorm(hidden_in)
        self.norm_hidden = SeparableLayerNorm(hidden_out)
        self.latent_norm = nn.LayerNorm(latent_dim)
        self.latent_norm_in = nn.LayerNorm(latent_dim)

        self.hidden_update = GatedSO2(node_in + hidden_in, hidden_out, latent_dim, radial_hidden)
        self.hidden_res = EquivariantLinear(hidden_in, hidden_out)
        self.n_scalar = hidden_out.mul(0, 1)
        self.latent_mlp = ScalarMLP([2 * n_species + latent_dim + self.n_scalar, *latent_hidden, latent_dim])

        self.edge_update = GatedSO2(node_in + hidden_out + node_in, edge_out, latent_dim, radial_hidden)
        self.edge_res = EquivariantLinear(edge_in, edge_out)

        self.node_update = GatedSO2(node_in + hidden_out, node_out, latent_dim, radial_hidden)
        self.node_res = EquivariantLinear(node_in, node_out)
        self.inv_sqrt_avg = 1.0 / math.sqrt(avg_num_neighbors)

    def node_message_input(self, node_i: Feats, hidden: Feats, node_j: Feats) -> list[tuple[Irreps, Feats]]:
        """[n_i || V_ij] in the bond frame, the only input of node messages; tests override it."""
        return [(self.node_in, node_i), (self.hidden_out, hidden)]

    def forward(self, latent: torch.Tensor, hidden: Feats, edge: Feats, node: Feats, onehot: torch.Tensor,
                edge_index: torch.Tensor, rotations: list[torch.Tensor], fcut: torch.Tensor,
                edge_chunk: int | None = None):
        """Update all states; with ``edge_chunk`` the per-edge work runs in slices of that many edges,
        so temporaries scale with the slice while only the persistent edge states scale with E."""
        node_n = self.norm_node(node)
        n_edges = edge_index.shape[1]
        if edge_chunk is None or n_edges <= edge_chunk:
            latent, hidden, edge, msg = self._edge_step(latent, hidden, edge, node_n, onehot, edge_index,
                                                        rotations, fcut)
            agg = scatter_feats(msg, edge_index[0], node[0].shape[0])
        elif torch.is_grad_enabled():
            # training: each slice's intermediates are recomputed during backward instead of kept, so
            # the graph holds the edge states and one slice's intermediates at a time (same gradients,
            # one more forward of the per-edge work); without it slicing kept them all and raised the peak
            parts, agg = [], None
            for s in range(0, n_edges, edge_chunk):
                sl = slice(s, s + edge_chunk)
                *states, msg = checkpoint(self._edge_step, latent[sl], [h[sl] for h in hidden],
                                          [e[sl] for e in edge], node_n, onehot, edge_index[:, sl],
                                          [w[sl] for w in rotations], fcut[sl], use_reentrant=False)
                parts.append(states)
                part = scatter_feats(msg, edge_index[0, sl], node[0].shape[0])
                agg = part if agg is None else [a + b for a, b in zip(agg, part, strict=True)]
            latent = torch.cat([p[0] for p in parts])
            hidden = [torch.cat(fs) for fs in zip(*[p[1] for p in parts], strict=True)]
            edge = [torch.cat(fs) for fs in zip(*[p[2] for p in parts], strict=True)]
        else:
            latent, hidden, edge, agg = self._edge_slices_in_place(latent, hidden, edge, node_n, onehot,
                                                                   edge_index, rotations, fcut, edge_chunk,
                                                                   node[0].shape[0])
        node = add_feats(agg, self.node_res(node, RES_OLD))
        return latent, hidden, edge, node

    def _edge_slices_in_place(self, latent, hidden, edge, node_n, onehot, edge_index, rotations, fcut,
                              edge_chunk: int, n_nodes: int):
        """Inference: a slice's new edge states depend only on its own old ones (and on the nodes), so
        they overwrite them. Without this, old states, the slices and their concatenation coexisted:
        ~6 KB per edge at 4096 Si atoms instead of ~2."""
        n_edges = edge_index.shape[1]

        def targets(old: Feats, irreps: Irreps) -> Feats:
            shapes = [(2 * l + 1, mul) for mul, l, _ in irreps.groups]
            if [tuple(f.shape[1:]) for f in old] == shapes:
                return old
            return [old[0].new_empty((n_edges, *shape)) for shape in shapes]

        new_hidden_all, new_edge = targets(hidden, self.hidden_out), targets(edge, self.edge_out)
        agg = None
        for s in range(0, n_edges, edge_chunk):
            sl = slice(s, s + edge_chunk)
            # the new states are written straight into their slots, not computed and then copied there
            *_, msg = self._edge_step(
                latent[sl], [h[sl] for h in hidden], [e[sl] for e in edge], node_n, onehot,
                edge_index[:, sl], [w[sl] for w in rotations], fcut[sl],
                out=(latent[sl], [t[sl] for t in new_hidden_all], [t[sl] for t in new_edge]))
            # one node-sized sum for all slices: a fresh one per slice, added to the last, made every
            # slice cost O(atoms), so the pass grew as atoms x slices (26 us/edge at 4096 Si atoms)
            if agg is None:
                agg = [f.new_zeros((n_nodes, *f.shape[1:])) for f in msg]
            for total, f in zip(agg, msg, strict=True):
                total.index_add_(0, edge_index[0, sl], f)
        return latent, new_hidden_all, new_edge, agg

    def _edge_step(self, latent, hidden, edge, node_n, onehot, edge_index, rotations, fcut, out=None):
        """``out``: (latent, hidden, edge) tensors to write the new states into. They may be the old states'
        own memory: each old state is read for the last time before its new value is written."""
        centre, neigh = edge_index
        latent_out, hidden_out, edge_out = (None, None, None) if out is None else out
        node_i = to_bond_frame(index_feats(node_n, centre), self.node_in, rotations)

        # 1-2. hidden edge state and latent, from [n_i || V_ij] and the pair geometry only
        inp = [(self.node_in, node_i), (self.hidden_in, self.norm_hidden_in(hidden))]
        # the residual weights RES_NEW / RES_OLD are folded into the maps that produce each term
        new_hidden = self.hidden_update(inp, latent, self.latent_norm(latent), RES_NEW)
        scalars = (new_hidden[self.hidden_out.index(0, 1)].squeeze(1) / RES_NEW if self.n_scalar
                   else latent[:, :0])
        new_latent = self.latent_mlp(torch.cat(
            [onehot[centre], self.latent_norm_in(latent), scalars, onehot[neigh]], dim=1))
        latent = torch.addcmul(RES_OLD * latent, (RES_NEW * fcut)[:, None], new_latent, out=latent_out)
        hidden = add_feats(new_hidden, self.hidden_res(hidden, RES_OLD), out=hidden_out)
        hidden_n = self.norm_hidden(hidden)

        # 3. edge (hopping) features: the only place where n_j enters
        node_j = to_bond_frame(index_feats(node_n, neigh), self.node_in, rotations)
        inp = [(self.node_in, node_i), (self.hidden_out, hidden_n), (self.node_in, node_j)]
        edge = add_feats(self.edge_update(inp, latent, factor=RES_NEW), self.edge_res(edge, RES_OLD),
                         out=edge_out)

        # 4. node features from per-edge messages of [n_i || V_ij], rotated back for the sum over j
        # the sum over neighbours is linear: its 1/sqrt(<N>) and RES_NEW scale each message instead
        msg = self.node_update(self.node_message_input(node_i, hidden_n, node_j), latent,
                               factor=RES_NEW * self.inv_sqrt_avg)
        return latent, hidden, edge, to_lab_frame(msg, self.node_out, rotations)
