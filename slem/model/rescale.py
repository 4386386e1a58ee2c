"""Per-species (onsite) and per-species-pair (hopping) output statistics.

The network predicts irreps features of unit scale; the rescale maps them to physical units:
0e channels get std and mean, all other channels (l > 0, or odd scalars) get the RMS per
component and no shift, which keeps the map equivariant. Statistics are fitted from targets
projected onto the same irreps (``BlockAssembler.to_irreps``).
"""

from __future__ import annotations

import torch
from torch import nn

from slem.model.irreps import Feats, Irreps


class Rescale(nn.Module):
    def __init__(self, irreps: Irreps, n_types: int):
        super().__init__()
        self.irreps = irreps
        self.k0 = irreps.index(0, 1)
        for g, (mul, _, _) in enumerate(irreps.groups):
            self.register_buffer(f"scale_{g}", torch.ones(n_types, mul))
        self.register_buffer("shift", torch.zeros(n_types, irreps.mul(0, 1)))

    def forward(self, feats: Feats, types: torch.Tensor) -> Feats:
        out = []
        for g, f in enumerate(feats):
            y = f * getattr(self, f"scale_{g}")[types][:, None, :]
            if g == self.k0:
                y = y + self.shift[types][:, None, :]
            out.append(y)
        return out

    @torch.no_grad()
    def fit(self, target: Feats, types: torch.Tensor) -> set[int]:
        """Set statistics from target irreps features; types without samples keep scale 1, shift 0.
        Returns the types that had samples."""
        n_types = self.shift.shape[0]
        seen = set()
        for t in range(n_types):
            sel = types == t
            if not bool(sel.any()):
                continue
            seen.add(t)
            scales = []
            for g, f in enumerate(target):
                x = f[sel]
                if g == self.k0:
                    self.shift[t] = x[:, 0, :].mean(0).to(self.shift.dtype)
                    s = x[:, 0, :].std(0, unbiased=False) if x.shape[0] > 1 else x[:, 0, :].abs().mean(0)
                else:
                    s = x.pow(2).mean(dim=(0, 1)).sqrt()
                scales.append(s)
            # Channels with no spread (absent orbitals, or identical samples) keep a small scale so the
            # network can still move them; the floor is relative to the largest scale of this type.
            top = max(float(s.max()) for s in scales) if scales else 1.0
            floor = 1e-3 * top if top > 0 else 1.0
            for g, s in enumerate(scales):
                getattr(self, f"scale_{g}")[t] = s.clamp_min(floor).to(self.shift.dtype)
        return seen

    @torch.no_grad()
    def mix_types(self, target: int, first: int, second: int) -> None:
        """Statistics of ``target`` from two fitted types: geometric-mean scales, mean shift (a prior for a
        species pair the training data lacks; see slem.model.fit.fill_unseen_pairs)."""
        for g in range(len(self.irreps.groups)):
            scale = getattr(self, f"scale_{g}")
            scale[target] = (scale[first] * scale[second]).sqrt()
        self.shift[target] = 0.5 * (self.shift[first] + self.shift[second])
