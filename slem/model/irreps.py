"""Irreps bookkeeping for the SLEM network.

Features are kept as a list of tensors, one per distinct irrep (l, p), each of shape
(batch, 2l + 1, multiplicity) -- components outer, channels inner ("ir_mul", as in
cuEquivariance). Grouping all channels of one (l, p) together makes a rotation one batched
matmul per l; channels inner makes channel mixing one GEMM over batch x (2l+1) rows and lets the
SO(2) layer take each m-component as a contiguous run of channels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from slem.model.config import parse_irreps

Feats = list[torch.Tensor]


@dataclass(frozen=True)
class Irreps:
    """Sorted, merged irreps: ``groups`` is a tuple of (mul, l, p) with unique (l, p), mul > 0."""

    groups: tuple[tuple[int, int, int], ...]

    @staticmethod
    def build(items: Iterable[tuple[int, int, int]]) -> Irreps:
        muls: dict[tuple[int, int], int] = {}
        for mul, l, p in items:
            if mul < 0 or l < 0 or p not in (1, -1):
                raise ValueError(f"invalid irrep ({mul}, {l}, {p})")
            if mul:
                muls[(l, p)] = muls.get((l, p), 0) + mul
        keys = sorted(muls, key=lambda lp: (lp[0], -lp[1]))
        return Irreps(tuple((muls[k], k[0], k[1]) for k in keys))

    @staticmethod
    def parse(text: str | Irreps) -> Irreps:
        if isinstance(text, Irreps):
            return text
        return Irreps.build(parse_irreps(text))  # the parser the config check uses

    def __str__(self) -> str:
        return "+".join(f"{mul}x{l}{'e' if p == 1 else 'o'}" for mul, l, p in self.groups)

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def lmax(self) -> int:
        return max((l for _, l, _ in self.groups), default=0)

    @property
    def dim(self) -> int:
        return sum(mul * (2 * l + 1) for mul, l, _ in self.groups)

    @property
    def num_channels(self) -> int:
        return sum(mul for mul, _, _ in self.groups)

    def index(self, l: int, p: int) -> int | None:
        for k, (_, gl, gp) in enumerate(self.groups):
            if (gl, gp) == (l, p):
                return k
        return None

    def mul(self, l: int, p: int) -> int:
        k = self.index(l, p)
        return 0 if k is None else self.groups[k][0]

    def __add__(self, other: Irreps) -> Irreps:
        return Irreps.build(list(self.groups) + list(other.groups))


def natural(lmax: int, mul: int = 1) -> Irreps:
    """The irreps of the spherical harmonics up to lmax: 0e + 1o + 2e + ..."""
    return Irreps.build((mul, l, (-1) ** l) for l in range(lmax + 1))


def cat_feats(parts: Sequence[tuple[Irreps, Feats]]) -> tuple[Irreps, Feats]:
    """Concatenate several feature sets channel-wise; channels of a shared (l, p) follow ``parts`` order."""
    spec = Irreps.build(g for irr, _ in parts for g in irr.groups)
    out: Feats = []
    for _, l, p in spec.groups:
        pieces = [f[k] for irr, f in parts if (k := irr.index(l, p)) is not None]
        out.append(pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2))
    return spec, out


def index_feats(feats: Feats, index: torch.Tensor) -> Feats:
    return [f.index_select(0, index) for f in feats]


def scatter_feats(feats: Feats, index: torch.Tensor, size: int) -> Feats:
    """Sum per-edge features onto nodes (``index`` is the centre of each edge)."""
    return [f.new_zeros((size,) + f.shape[1:]).index_add_(0, index, f) for f in feats]


def feats_to_flat(feats: Feats) -> torch.Tensor:
    return torch.cat([f.reshape(f.shape[0], -1) for f in feats], dim=1)


def add_feats(fa: Feats, fb: Feats, out: Feats | None = None) -> Feats:
    if out is None:
        return [x + y for x, y in zip(fa, fb, strict=True)]
    return [torch.add(x, y, out=o) for x, y, o in zip(fa, fb, out, strict=True)]
