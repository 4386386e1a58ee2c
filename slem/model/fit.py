"""Fit the output statistics (rescale) of every head from training graphs with targets."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from slem.model.blocks import expand_blocks
from slem.model.slem import SPIN_ORBIT_COMPONENT, SlemModel, SlemNet

SPIN_ORBIT_COMPONENT_ORDER = sorted(SPIN_ORBIT_COMPONENT, key=SPIN_ORBIT_COMPONENT.get)


@torch.no_grad()
def fit_rescale(
    model: SlemModel, graphs: Sequence[dict], operators: Sequence[str] | None = None
) -> dict[str, int]:
    """Set per-species / per-pair statistics from the targets ``X_onsite`` / ``X_hopping`` of ``graphs``.

    Heads whose targets no graph holds are left unchanged. Returns the number of graphs used per head."""
    mask = model.orbital_mask
    used: dict[str, int] = {}
    for name, head in model.heads.items():
        # a vector head (H_so) stacks the targets of its parts in its component order (y, z, x)
        vector = getattr(head, "vector", False)
        targets = [f"{name}_{a}" for a in SPIN_ORBIT_COMPONENT_ORDER] if vector else [name]
        if operators is not None and not set(targets) <= set(operators):
            continue
        samples = []
        for graph in graphs:
            if any(f"{t}_{part}" not in graph for t in targets for part in ("onsite", "hopping")):
                continue
            geom = model.geometry(graph)
            species, ei = geom.species, geom.edge_index
            dev = mask.device
            rows, cols = mask[species[ei[0]]], mask[species[ei[1]]]
            onsite = torch.stack([expand_blocks(graph[f"{t}_onsite"].to(dev, model.dtype), mask[species],
                                                mask[species]) for t in targets], dim=1)
            hopping = torch.stack([expand_blocks(graph[f"{t}_hopping"].to(dev, model.dtype), rows, cols)
                                   for t in targets], dim=1)
            if not vector:
                onsite, hopping = onsite[:, 0], hopping[:, 0]
            samples.append((geom, onsite, hopping))
        used[name] = len(samples)
        if not samples:
            continue
        if isinstance(head, SlemNet):
            node_t = [head.node_asm.to_irreps(o) for _, o, _ in samples]
            edge_t = [head.edge_asm.to_irreps(h) for _, _, h in samples]
            head.rescale_node.fit([torch.cat(fs) for fs in zip(*node_t, strict=True)],
                                  torch.cat([g.species for g, _, _ in samples]))
            inputs = [head.edge_statistics_inputs(g) for g, _, _ in samples]
            seen = head.rescale_edge.fit([torch.cat(fs) for fs in zip(*edge_t, strict=True)],
                                         *[torch.cat(parts) for parts in zip(*inputs, strict=True)])
            mixed = fill_unseen_pairs(head.rescale_edge, head.n_species, seen)
            if mixed:
                species = model.config.species
                pairs = ", ".join(f"{species[a]}-{species[b]}" for a, b in mixed)
                print(f"{name}: no training edges for {pairs}; their output statistics mix those of the two "
                      "like pairs (a prior, not a fit)", file=sys.stderr)
        else:
            head.fit(samples)
    return used


def fill_unseen_pairs(rescale, n_species: int, seen: set[int]) -> list[tuple[int, int]]:
    """Pair types (a, b) without training edges, whose like pairs (a, a) and (b, b) have them, get their
    statistics mixed from those (``rescale.mix_types``). Otherwise such a pair would leave the network at
    unit scale, about 1 eV, where a held-out composition (Si-C after training on Si and C) needs the
    hoppings' own size. Returns the pairs filled."""
    mixed = []
    for a in range(n_species):
        for b in range(n_species):
            t, aa, bb = a * n_species + b, a * n_species + a, b * n_species + b
            if t not in seen and aa in seen and bb in seen:
                rescale.mix_types(t, aa, bb)
                mixed.append((a, b))
    return mixed
