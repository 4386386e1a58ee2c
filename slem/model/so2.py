"""SO(2) convolution (eSCN): rotate into the bond frame, linear map per |m|, rotate back.

In the bond frame (bond along e3nn's pole), a tensor product with the bond's spherical harmonics
only couples equal |m|. For each pair of input/output irreps the coupling is either
"even" -- p_in p_out (-1)^(l_in + l_out) = +1, the CG paths with l_in + l_f + l_out even -- which
acts identically on the +m and -m components (W1, also at m = 0), or "odd", which maps
+m -> -m and -m -> +m with opposite signs (W2, absent at m = 0). Masking the weights by this rule
makes the layer exactly O(3)-equivariant including inversion; without it only SO(3) holds.
For m > 0 the map on the (+m, -m) pair is out(+m) = A x(+m) - B x(-m), out(-m) = B x(+m) + A x(-m).
Inputs with l = 0 enter at m = 0 like any other input.

Per-edge states can stay in their bond frame between layers: everything applied to them besides
the SO(2) map (gates, channel mixing, latent scales, norms, residual sums) acts on channels only,
so it commutes with the rotation. ``SO2Linear.bond_frame`` is the map without the rotations;
``forward`` wraps it for lab-frame features.

Bond-frame features store their components "m-major", (m=0, -1, +1, -2, +2, ...), instead of
m = -l..l, and the SO(2) map takes them apart with one ``unbind``, whose backward is one stack,
where indexing single components made every backward pass zero-fill a full copy of the input per
component. The reordering is folded into the rotations (``bond_rotations``); the outputs come back
m-major too (``_assemble``).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from slem.model.irreps import Feats, Irreps
from slem.model.radial import Dense, ScalarMLP
from slem.model.so2_gather import Slot, gather_rows, plan_slots


class SO2Linear(nn.Module):
    def __init__(self, irreps_in: Irreps, irreps_out: Irreps, latent_dim: int,
                 radial_hidden: list[int] | None = None):
        super().__init__()
        self.irreps_in, self.irreps_out = irreps_in, irreps_out
        self.mmax = min(irreps_in.lmax, irreps_out.lmax)
        self.w1 = nn.ParameterList()
        self.w2 = nn.ParameterList()
        self.in_groups: list[list[int]] = []
        self.out_groups: list[list[int]] = []
        self.n_in: list[int] = []
        self.has_odd: list[bool] = []
        self._plan_cache: dict[tuple[Irreps, ...], tuple[tuple[Slot, ...], ...]] = {}
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
            self.has_odd.append(m > 0 and bool((even == 0).any()))
            self.register_buffer(f"even_{m}", even, persistent=False)
            self.w1.append(nn.Parameter(torch.randn_like(even) / math.sqrt(n_in)))
            if m > 0:
                # with no odd coupling at this m, W2 is masked to zero entirely; it stays (frozen) so
                # that model files keep one layout
                self.w2.append(nn.Parameter(torch.randn_like(even) / math.sqrt(n_in),
                                            requires_grad=self.has_odd[m]))
        # Per-edge, per-input-channel weights from the latent. A bottleneck (DeePTB's
        # ``tp_radial_channels``) costs latent*h + h*n_in per edge instead of latent*n_in.
        if radial_hidden:
            self.radial = ScalarMLP([latent_dim, *radial_hidden, sum(self.n_in)])
        else:
            self.radial = Dense(latent_dim, sum(self.n_in))
        k0 = irreps_out.index(0, 1)
        self.bias_slot = None if k0 is None else self.out_groups[0].index(k0)
        self.bias = nn.Parameter(torch.zeros(irreps_out.mul(0, 1))) if k0 is not None else None

    @staticmethod
    def _is_even(gin: tuple[int, int, int], gout: tuple[int, int, int]) -> bool:
        return gin[2] * gout[2] * (-1) ** (gin[1] + gout[1]) == 1

    def forward(self, feats: Feats, wigner: list[torch.Tensor], latent: torch.Tensor) -> Feats:
        """``feats`` in the lab frame; ``wigner[l]`` (E, 2l+1, 2l+1) maps the bond frame to the lab."""
        rotations = bond_rotations(wigner)
        rotated = to_bond_frame(feats, self.irreps_in, rotations)
        return to_lab_frame(self.bond_frame(rotated, latent), self.irreps_out, rotations)

    def bond_frame(self, feats: Feats, latent: torch.Tensor) -> Feats:
        """The SO(2) map on features already in each edge's bond frame; the result stays there."""
        return self.bond_frame_parts([(self.irreps_in, feats)], latent)

    def bond_frame_parts(self, parts: list[tuple[Irreps, Feats]], latent: torch.Tensor) -> Feats:
        """``bond_frame`` of the channel-wise concatenation of ``parts`` (as ``cat_feats`` orders it),
        gathered straight into the per-m inputs instead of concatenated first.

        One matmul per m: the (-m, +m) pair shares W1, and W2 (odd couplings) joins it as one block
        matrix; with no odd couplings (natural-parity irreps) W2 is skipped, not multiplied by zero."""
        return self._assemble(self.bond_frame_rows(parts, latent), latent)

    def bond_frame_rows(self, parts: list[tuple[Irreps, Feats]], latent: torch.Tensor) -> list[torch.Tensor]:
        """The map's outputs per m before they are taken apart into groups: (E, n_out) at m = 0, then
        (E, 2, n_out) with rows -m, +m; columns of the groups with l >= m (``column``)."""
        plan = self._plan(tuple(irreps for irreps, _ in parts))
        rows = gather_rows(plan, self.radial(latent), [f for _, feats in parts for f in feats])
        n_edges = latent.shape[0]
        outs: list[torch.Tensor] = []
        for m in range(self.mmax + 1):
            even = getattr(self, f"even_{m}")
            a = self.w1[m] * even
            if m == 0:
                x = rows[0]
                outs.append(x @ a.T if self.bias is None else torch.addmm(self._bias_row(), x, a.T))
                continue
            # rows [x(-m) | x(+m)], (E, 2 n_in): also (E, 2, n_in) contiguous, -m then +m
            x = rows[m]
            if not self.has_odd[m]:
                # W1 acts alike on -m and +m: one GEMM over 2E rows
                outs.append((x.view(2 * n_edges, self.n_in[m]) @ a.T).view(n_edges, 2, a.shape[0]))
                continue
            # out(-m) = A x(-m) + B x(+m), out(+m) = A x(+m) - B x(-m): one GEMM with the block matrix
            # [[A^T, -B^T], [B^T, A^T]], whose rows come out as [out(-m) | out(+m)], nothing to add or stack
            b = self.w2[m - 1] * (1.0 - even)
            w = torch.cat([torch.cat([a.T, -b.T], dim=1), torch.cat([b.T, a.T], dim=1)], dim=0)
            outs.append((x @ w).view(n_edges, 2, a.shape[0]))
        return outs

    def column(self, m: int, group: int) -> int:
        """First column of output group ``group`` in the m-th output of ``bond_frame_rows``."""
        before = self.out_groups[m][: self.out_groups[m].index(group)]
        return sum(self.irreps_out.groups[g][0] for g in before)

    def _plan(self, part_irreps: tuple[Irreps, ...]) -> tuple[tuple[Slot, ...], ...]:
        """Per m, where each input component goes in the rows, in the channel order of the concatenated
        input; the parts' tensors are numbered in order, part by part."""
        if part_irreps not in self._plan_cache:
            if Irreps.build(g for irreps in part_irreps for g in irreps.groups) != self.irreps_in:
                raise ValueError(f"SO(2) input parts {[str(i) for i in part_irreps]} do not add up to "
                                 f"{self.irreps_in}")
            first = [sum(len(irreps) for irreps in part_irreps[:q]) for q in range(len(part_irreps))]
            sources = [
                [first[q] + k for g in self.in_groups[m] for (_, l, p) in [self.irreps_in.groups[g]]
                 for q, irreps in enumerate(part_irreps) if (k := irreps.index(l, p)) is not None]
                for m in range(self.mmax + 1)]
            widths = [mul for irreps in part_irreps for mul, _, _ in irreps.groups]
            self._plan_cache[part_irreps] = plan_slots(sources, widths)
        return self._plan_cache[part_irreps]

    def _bias_row(self) -> torch.Tensor:
        muls = [self.irreps_out.groups[g][0] for g in self.out_groups[0]]
        parts = [torch.zeros(n, dtype=self.bias.dtype, device=self.bias.device) for n in muls]
        parts[self.bias_slot] = self.bias
        return torch.cat(parts)

    def _assemble(self, outs: list[torch.Tensor], latent: torch.Tensor) -> Feats:
        """Per-m outputs back to (E, 2l+1, mul) groups, components m-major; splits, not slices, so that
        the backward pass concatenates instead of zero-filling."""
        n_edges = latent.shape[0]
        split = [torch.split(out, [self.irreps_out.groups[g][0] for g in self.out_groups[m]], dim=-1)
                 for m, out in enumerate(outs)]
        result: Feats = []
        for g, (mul, l, _) in enumerate(self.irreps_out.groups):
            comps = [split[0][self.out_groups[0].index(g)][:, None, :]]
            for m in range(1, l + 1):
                if m <= self.mmax:
                    comps.append(split[m][self.out_groups[m].index(g)])
                else:
                    comps.append(latent.new_zeros((n_edges, 2, mul)))
            result.append(comps[0] if l == 0 else torch.cat(comps, dim=1))
        return result


@functools.cache
def m_major_order(l: int) -> tuple[int, ...]:
    """Positions in m = -l..l of the m-major components (0, -1, +1, -2, +2, ...)."""
    return (l, *(l + sign * m for m in range(1, l + 1) for sign in (-1, 1)))


def bond_rotations(wigner: list[torch.Tensor]) -> list[torch.Tensor]:
    """``wigner[l]`` (bond frame to lab, E x (2l+1) x (2l+1)) with columns in m-major order: what
    ``to_bond_frame`` and ``to_lab_frame`` take."""
    return [w if l == 0 else w[:, :, list(m_major_order(l))] for l, w in enumerate(wigner)]


def to_bond_frame(feats: Feats, irreps: Irreps, rotations: list[torch.Tensor]) -> Feats:
    """Lab-frame features into each edge's bond frame, m-major (``rotations`` from ``bond_rotations``)."""
    return [f if l == 0 else rotate(rotations[l].transpose(1, 2), f)
            for f, (_, l, _) in zip(feats, irreps.groups, strict=True)]


def to_lab_frame(feats: Feats, irreps: Irreps, rotations: list[torch.Tensor]) -> Feats:
    return [f if l == 0 else rotate(rotations[l], f)
            for f, (_, l, _) in zip(feats, irreps.groups, strict=True)]


SMALL_BMM = 400  # multiply-adds per batch entry below which torch's CPU bmm runs an unblocked loop


def rotate(rotation: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``rotation @ f`` for (E, d, d) and (E, d, mul).

    For small matrices (l = 1 with 32 channels: 288 multiply-adds per edge) torch's CPU bmm takes
    ~4x longer than d broadcast multiply-adds, in both directions: those are used instead, with autograd
    through ``_SmallRotate``, whose backward is the same multiply-adds with the transposed rotation."""
    d = rotation.shape[1]
    if f.is_cuda or d * d * f.shape[2] >= SMALL_BMM:
        return torch.matmul(rotation, f)
    if torch.is_grad_enabled() and (rotation.requires_grad or f.requires_grad):
        return _SmallRotate.apply(rotation, f)
    return _small_rotate(rotation, f)


def _small_rotate(rotation: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    out = rotation[:, :, :1] * f[:, :1, :]
    for k in range(1, rotation.shape[2]):
        out.addcmul_(rotation[:, :, k : k + 1], f[:, k : k + 1, :])
    return out


class _SmallRotate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rotation, f):
        ctx.save_for_backward(rotation, f if rotation.requires_grad else None)
        return _small_rotate(rotation, f)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        rotation, f = ctx.saved_tensors
        grad_f = _small_rotate(rotation.transpose(1, 2), grad) if ctx.needs_input_grad[1] else None
        # the bond rotations come from fixed geometry; a rotation that needs a gradient is rare
        grad_rotation = torch.matmul(grad, f.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        return grad_rotation, grad_f
