"""Orbital layout and the map between irreps features and (norb_i, norb_j) blocks via Wigner-3j.

All species share a "full" basis: for each l, as many shells as the species with the most
shells of that l; species shell k of angular momentum l sits on full shell k of l. Blocks are
built in the full basis (nf x nf) and cut to each species' orbitals at the end.

For a shell pair (l_a, l_b) the block is sum_l C^l f_l, with C^l = sqrt(2l+1) * wigner_3j(l_a, l_b, l)
over l = |l_a-l_b|..l_a+l_b. With this normalisation the stacked C^l form an orthogonal matrix,
so ``blocks_to_irreps`` is just its transpose (used to fit the output statistics).

A vector assembler builds the three blocks (B_y, B_z, B_x) of a spin-orbit part (slem.spinor), which
transform as l_a (x) l_b (x) 1 with the parity of l_a + l_b (a pseudovector): each path l of the shell
pair couples with the vector to k = |l-1|..l+1, C^{l,k} = sum_M C^l_(ab),M C^(l,1)k_(M mu),kappa. Its
component axis is an l = 1 index in the project's p order (y, z, x).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import cache

import torch
from e3nn import o3
from torch import nn

from slem.data.orbitals import parse_shells
from slem.model.irreps import Feats, Irreps


@cache
def _cg_matrix64(la: int, lb: int) -> torch.Tensor:
    """((2la+1)(2lb+1), sum_l (2l+1)) orthogonal matrix of normalised Wigner-3j symbols."""
    cols = [_cg_path(la, lb, l) for l in range(abs(la - lb), la + lb + 1)]
    return torch.cat(cols, dim=1)


def _cg_path(la: int, lb: int, l: int) -> torch.Tensor:
    return math.sqrt(2 * l + 1) * o3.wigner_3j(la, lb, l, dtype=torch.float64).reshape(-1, 2 * l + 1)


def paths(la: int, lb: int, vector: bool) -> list[tuple[int, int]]:
    """(l, k) per output irrep of a shell pair: k = l for blocks; k = |l-1|..l+1 for vector blocks."""
    ls = range(abs(la - lb), la + lb + 1)
    return [(l, k) for l in ls for k in (range(abs(l - 1), l + 2) if vector else (l,))]


@cache
def _cg_vector64(la: int, lb: int) -> torch.Tensor:
    """((2la+1)(2lb+1)*3, sum over paths (2k+1)): rows (m_a, m_b, mu), orthogonal like _cg_matrix64."""
    cols = []
    for l, k in paths(la, lb, True):
        coupled = _cg_path(l, 1, k).reshape(2 * l + 1, 3 * (2 * k + 1))
        cols.append((_cg_path(la, lb, l) @ coupled).reshape(-1, 2 * k + 1))
    return torch.cat(cols, dim=1)


class OrbitalLayout:
    """Full-basis bookkeeping for a set of species and their shell strings."""

    def __init__(self, species: Sequence[str], basis: Mapping[str, str]):
        missing = [s for s in species if s not in basis]
        if missing:
            raise ValueError(
                f"no basis given for species {missing}; add e.g. basis={{'{missing[0]}': '1s1p'}}"
            )
        self.species = list(species)
        self.shells_of = {s: parse_shells(basis[s]) for s in species}
        lmax = max(max(sh) for sh in self.shells_of.values())
        self.counts = [max(sh.count(l) for sh in self.shells_of.values()) for l in range(lmax + 1)]
        self.shells = [l for l in range(lmax + 1) for _ in range(self.counts[l])]
        self.offsets = [sum(2 * l + 1 for l in self.shells[:k]) for k in range(len(self.shells))]
        self.nf = sum(2 * l + 1 for l in self.shells)
        self.lmax = lmax
        masks = []
        for s in self.species:
            sh = self.shells_of[s]
            mask = torch.zeros(self.nf, dtype=torch.bool)
            for k, l in enumerate(self.shells):
                rank = sum(1 for q in self.shells[:k] if q == l)
                if rank < sh.count(l):
                    mask[self.offsets[k] : self.offsets[k] + 2 * l + 1] = True
            masks.append(mask)
        self.orbital_mask = torch.stack(masks)  # (n_species, nf)
        self.norb = self.orbital_mask.sum(1)

    def shell_pairs(self, upper: bool) -> list[tuple[int, int]]:
        n = len(self.shells)
        return [(a, b) for a in range(n) for b in range(n) if not upper or a <= b]

    def pair_irreps(self, upper: bool, vector: bool = False) -> Irreps:
        items = []
        for a, b in self.shell_pairs(upper):
            la, lb = self.shells[a], self.shells[b]
            items += [(1, k, (-1) ** (la + lb)) for _, k in paths(la, lb, vector)]
        return Irreps.build(items)


class BlockAssembler(nn.Module):
    """Irreps features (one channel per shell pair and l) <-> full-basis blocks (B, nf, nf).

    ``upper=True`` (onsite): only a <= b shell pairs are predicted and the result is symmetrised,
    M = U + U^T with the diagonal shell blocks entering U at half weight. ``vector=True``: the three
    spin-orbit blocks (B, 3, nf, nf), in the order (y, z, x); their onsite blocks are antisymmetric,
    M = U - U^T.
    """

    def __init__(self, layout: OrbitalLayout, upper: bool, vector: bool = False):
        super().__init__()
        self.layout, self.upper, self.vector = layout, upper, vector
        self.width = 3 if vector else 1
        self.irreps = layout.pair_irreps(upper, vector)
        pairs = layout.shell_pairs(upper)
        used: dict[tuple[int, int], int] = {}
        self.types: list[tuple[int, int]] = []
        # per type: list over l of (group index, channel indices); flat positions in the nf x nf block
        self.type_channels: list[list[tuple[int, torch.Tensor]]] = []
        flat_positions: list[torch.Tensor] = []
        by_type: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for a, b in pairs:
            by_type.setdefault((layout.shells[a], layout.shells[b]), []).append((a, b))
        channel_of: dict[tuple[int, int, int], int] = {}
        for a, b in pairs:
            la, lb = layout.shells[a], layout.shells[b]
            p = (-1) ** (la + lb)
            for path in paths(la, lb, vector):
                channel_of[(a, b, path)] = used.get((path[1], p), 0)
                used[(path[1], p)] = channel_of[(a, b, path)] + 1
        nf = layout.nf
        for (la, lb), plist in by_type.items():
            self.types.append((la, lb))
            p = (-1) ** (la + lb)
            chans = []
            for path in paths(la, lb, vector):
                idx = torch.tensor([channel_of[(a, b, path)] for a, b in plist])
                chans.append((self.irreps.index(path[1], p), idx))
            self.type_channels.append(chans)
            pos = []
            mu = torch.arange(self.width)
            for a, b in plist:
                rows = layout.offsets[a] + torch.arange(2 * la + 1)
                cols = layout.offsets[b] + torch.arange(2 * lb + 1)
                # flat index into (nf, nf, width), rows (m_a, m_b, mu) as the Clebsch-Gordan matrix has them
                pos.append(((rows[:, None, None] * nf + cols[None, :, None]) * self.width + mu).reshape(-1))
            flat_positions.append(torch.stack(pos))
        self.flat_positions = torch.cat([fp.reshape(-1) for fp in flat_positions])
        half = torch.ones(nf, nf, self.width)
        if upper:
            for k, l in enumerate(layout.shells):
                r = layout.offsets[k] + torch.arange(2 * l + 1)
                half[r[:, None], r[None, :]] = 0.5
        half = half.reshape(-1)
        self.register_buffer("half_mask", half, persistent=False)
        self._cg_cache: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}

    def _cg(self, ref: torch.Tensor) -> list[torch.Tensor]:
        key = (ref.dtype, ref.device)
        if key not in self._cg_cache:
            table = _cg_vector64 if self.vector else _cg_matrix64
            self._cg_cache[key] = [table(la, lb).to(ref.dtype).to(ref.device) for la, lb in self.types]
        return self._cg_cache[key]

    def forward(self, feats: Feats) -> torch.Tensor:
        n = feats[0].shape[0]
        nf = self.layout.nf
        pieces = []
        for cg, chans in zip(self._cg(feats[0]), self.type_channels, strict=True):
            f = torch.cat([feats[g][:, :, idx.to(feats[g].device)].transpose(1, 2) for g, idx in chans],
                          dim=2)
            pieces.append((f @ cg.T).reshape(n, f.shape[1] * cg.shape[0]))
        flat = feats[0].new_zeros((n, nf * nf * self.width))
        flat[:, self.flat_positions.to(flat.device)] = torch.cat(pieces, dim=1)
        if self.upper:
            flat = flat * self.half_mask
        blocks = flat.view(n, nf, nf, self.width).permute(0, 3, 1, 2)
        if self.upper:
            blocks = blocks - blocks.transpose(2, 3) if self.vector else blocks + blocks.transpose(2, 3)
        return blocks if self.vector else blocks[:, 0]

    def to_irreps(self, blocks: torch.Tensor) -> Feats:
        """Inverse map: full-basis blocks (B, nf, nf), or (B, 3, nf, nf) for a vector assembler -> irreps
        features (exact for symmetric, or antisymmetric vector, onsite blocks)."""
        n = blocks.shape[0]
        layout = blocks.permute(0, 2, 3, 1) if self.vector else blocks
        flat = layout.reshape(n, -1)[:, self.flat_positions.to(blocks.device)]
        out = [blocks.new_zeros((n, 2 * l + 1, mul)) for mul, l, _ in self.irreps.groups]
        start = 0
        for (la, lb), cg, chans in zip(self.types, self._cg(blocks), self.type_channels, strict=True):
            size = (2 * la + 1) * (2 * lb + 1) * self.width
            npairs = len(chans[0][1])
            f = flat[:, start : start + npairs * size].reshape(n, npairs, size) @ cg
            start += npairs * size
            col = 0
            for g, idx in chans:
                width = self.irreps.groups[g][1] * 2 + 1
                out[g][:, :, idx.to(blocks.device)] = f[:, :, col : col + width].transpose(1, 2)
                col += width
        return out


def cut_blocks(full: torch.Tensor, mask_rows: torch.Tensor, mask_cols: torch.Tensor) -> torch.Tensor:
    """Flat concat of per-row (norb_i, norb_j) blocks in row-major order from full-basis blocks."""
    keep = mask_rows[:, :, None] & mask_cols[:, None, :]
    return full[keep]


def expand_blocks(flat: torch.Tensor, mask_rows: torch.Tensor, mask_cols: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`cut_blocks`; orbitals a species lacks are zero."""
    keep = mask_rows[:, :, None] & mask_cols[:, None, :]
    if flat.numel() != int(keep.sum()):
        raise ValueError(
            f"flat block array has {flat.numel()} values, the orbital layout needs {int(keep.sum())}"
        )
    full = flat.new_zeros(keep.shape)
    full[keep] = flat
    return full
