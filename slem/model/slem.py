"""The SLEM model: one strictly local equivariant network per operator (H, D) plus the overlap head.

Input: a graph dict (pos, species, edge_index, edge_shift[, edge_reverse]); output per head X:
``X_onsite`` (flat concat of (norb_i, norb_i) blocks) and ``X_hopping`` (flat concat of
(norb_i, norb_j) blocks in edge order). Hopping blocks are made exactly Hermitian by averaging each
directed edge with the transpose of its reverse edge: H_ij(R) = (B_ij(R) + B_ji(-R)^T) / 2.

The spin-orbit parts H_so_x, H_so_y, H_so_z (slem.spinor) come from one vector head, ``H_so``, whose
blocks transform as l_i (x) l_j (x) 1e and are antisymmetric: H_so_ij(R) = (B_ij(R) - B_ji(-R)^T) / 2.
Being real, they make the spinor H time-reversal symmetric by construction.
"""

from __future__ import annotations

import torch
from torch import nn

from slem.data.operators import SPIN_ORBIT_OPERATORS
from slem.model.blocks import BlockAssembler, OrbitalLayout, cut_blocks
from slem.model.bond_rescale import BondRescale
from slem.model.config import SlemConfig
from slem.model.edges import EdgeGeometry, edge_geometry
from slem.model.embedding import InitLayer
from slem.model.exact_overlap import ExactOverlapHead
from slem.model.irreps import Irreps
from slem.model.layer import SlemLayer
from slem.model.linear import EquivariantLinear
from slem.model.overlap import OverlapHead
from slem.model.rescale import Rescale
from slem.model.so2 import bond_rotations, to_lab_frame

# the vector assembler's component axis is an l = 1 index in the p order (y, z, x)
SPIN_ORBIT_COMPONENT = {"x": 2, "y": 0, "z": 1}


def spin_orbit_head(operator: str) -> str:
    """The vector head (H_so, D_so) that predicts a spin-orbit part (H_so_x, ...)."""
    return operator.rsplit("_", 1)[0]


class SlemNet(nn.Module):
    """Equivariant network for one operator; returns full-basis onsite and (unsymmetrised) hopping blocks."""

    def __init__(self, config: SlemConfig, layout: OrbitalLayout, vector: bool = False):
        super().__init__()
        n_species = len(config.species)
        hidden = Irreps.parse(config.hidden_irreps)
        self.vector = vector
        self.node_asm = BlockAssembler(layout, upper=True, vector=vector)
        self.edge_asm = BlockAssembler(layout, upper=False, vector=vector)
        node_pairs, edge_pairs = self.node_asm.irreps, self.edge_asm.irreps
        self.lmax = max(hidden.lmax, node_pairs.lmax, edge_pairs.lmax)
        self.init = InitLayer(n_species, hidden, config.latent_dim, config.latent_hidden, config.n_radial,
                              config.avg_num_neighbors)
        self.layers = nn.ModuleList()
        for k in range(config.n_layers):
            last = k == config.n_layers - 1
            self.layers.append(SlemLayer(
                n_species, hidden, hidden, hidden, hidden,
                node_pairs if last else hidden, edge_pairs if last else hidden,
                config.latent_dim, config.latent_hidden, config.avg_num_neighbors, config.radial_hidden))
        self.out_node = EquivariantLinear(node_pairs, node_pairs)
        self.out_edge = EquivariantLinear(edge_pairs, edge_pairs)
        self.rescale_node = Rescale(node_pairs, n_species)
        if config.bond_rescale_knots:
            self.rescale_edge = BondRescale(edge_pairs, n_species * n_species, config.bond_rescale_knots)
        else:
            self.rescale_edge = Rescale(edge_pairs, n_species * n_species)
        self.n_species = n_species

    def features(self, geom: EdgeGeometry, edge_chunk: int | None = None):
        n_nodes = geom.species.shape[0]
        latent, hidden, edge, node = self.init(geom.onehot, geom.edge_index, geom.vec_internal, geom.length,
                                               geom.r_cut, geom.fcut, n_nodes)
        rotations = bond_rotations(geom.wigner)
        for layer in self.layers:
            latent, hidden, edge, node = layer(latent, hidden, edge, node, geom.onehot, geom.edge_index,
                                               rotations, geom.fcut, edge_chunk)
        edge = to_lab_frame(self.out_edge(edge), self.out_edge.irreps_out, rotations)
        return self.out_node(node), edge

    def pair_types(self, geom: EdgeGeometry) -> torch.Tensor:
        return geom.species[geom.edge_index[0]] * self.n_species + geom.species[geom.edge_index[1]]

    def edge_statistics_inputs(self, geom: EdgeGeometry) -> tuple[torch.Tensor, ...]:
        if isinstance(self.rescale_edge, BondRescale):
            return self.pair_types(geom), geom.length, geom.vec_internal
        return (self.pair_types(geom),)

    def forward(self, geom: EdgeGeometry, edge_chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        node, edge = self.features(geom, edge_chunk)
        node = self.rescale_node(node, geom.species)
        edge = self.rescale_edge(edge, *self.edge_statistics_inputs(geom))
        return self.node_asm(node), self.edge_asm(edge)


class SlemModel(nn.Module):
    def __init__(self, config: SlemConfig):
        super().__init__()
        self.config = config
        self.layout = OrbitalLayout(config.species, config.basis)
        self.heads = nn.ModuleDict()
        for name in config.heads:
            if name in SPIN_ORBIT_OPERATORS:
                head = spin_orbit_head(name)
                if head not in self.heads:
                    self.heads[head] = SlemNet(config, self.layout, vector=True)
            elif name == "S" and config.overlap == "basis":
                self.heads[name] = ExactOverlapHead(self.layout, max(config.r_cut.values()))
            elif name == "S":
                self.heads[name] = OverlapHead(self.layout, config.n_radial, config.overlap_hidden)
            else:
                self.heads[name] = SlemNet(config, self.layout)
        self.lmax = max([h.lmax for h in self.heads.values() if isinstance(h, SlemNet)] + [self.layout.lmax])
        self.register_buffer("species_cutoff", torch.tensor([float(config.r_cut[s]) for s in config.species]))
        self.register_buffer("orbital_mask", self.layout.orbital_mask.clone(), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.species_cutoff.dtype

    def geometry(self, graph: dict) -> EdgeGeometry:
        return edge_geometry(graph, self.species_cutoff, len(self.config.species), self.lmax,
                             self.config.poly_p, self.dtype)

    def full_blocks(
        self, graph: dict, edge_chunk: int | None = None
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Full-basis (N, nf, nf) onsite and Hermitian (E, nf, nf) hopping blocks per head."""
        geom = self.geometry(graph)
        rev = geom.reverse
        out = {}
        for name, head in self.heads.items():
            onsite, hop = head(geom, edge_chunk) if isinstance(head, SlemNet) else head(geom)
            partner = hop[rev.clamp_min(0)].transpose(-2, -1)
            has_partner = (rev >= 0).view(-1, *[1] * (hop.dim() - 1))
            if getattr(head, "vector", False):
                hop = 0.5 * (hop - torch.where(has_partner, partner, -hop))
                for axis, component in SPIN_ORBIT_COMPONENT.items():
                    out[f"{name}_{axis}"] = (onsite[:, component], hop[:, component])
            else:
                out[name] = (onsite, 0.5 * (hop + torch.where(has_partner, partner, hop)))
        return out

    def forward(self, graph: dict, edge_chunk: int | None = None,
                halo_chunk: int | None = None) -> dict[str, torch.Tensor]:
        """Blocks for ``graph``. ``edge_chunk``: run each layer's per-edge work in slices of this many
        edges (same result; temporaries bounded, persistent edge states ~2 KB/edge in float32).
        ``halo_chunk``: additionally split the system into spatial chunks owning about this many edges
        and run each with its one-cutoff halo (exact by strict locality; memory independent of size)."""
        if halo_chunk is not None and graph["edge_index"].shape[1] > halo_chunk:
            from slem.model.chunked import forward_chunked  # avoids an import cycle

            return forward_chunked(self, graph, halo_chunk, edge_chunk)
        blocks = self.full_blocks(graph, edge_chunk)
        species = graph["species"].long()
        ei = graph["edge_index"].long()
        mask = self.orbital_mask
        out = {}
        for name, (onsite, hop) in blocks.items():
            out[f"{name}_onsite"] = cut_blocks(onsite, mask[species], mask[species])
            out[f"{name}_hopping"] = cut_blocks(hop, mask[species[ei[0]]], mask[species[ei[1]]])
        return out


def build_model(config: SlemConfig) -> SlemModel:
    """Build a model in the config's dtype (change later with ``model.to(dtype)``)."""
    return SlemModel(config).to(config.torch_dtype)
