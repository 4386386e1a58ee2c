"""The gate applied straight to the SO(2) map's per-|m| outputs, assembling the groups as it goes.

Through autograd primitives the gate after an SO(2) map costs a concatenation per group (the per-m
outputs into (E, 2l+1, mul)) and a product, and backward a product, a reduction and a concatenation per
m to undo the splits. ``gated_rows`` is one autograd node: each gated component is written once from
its row, and backward writes each row's gradient once (every column of every per-m output belongs to
exactly one component, scalar or gate, so nothing is zero-filled or summed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable


@dataclass(frozen=True)
class GroupPlan:
    kind: str  # "silu" (even scalars), "tanh" (odd scalars) or "gated" (l > 0)
    mul: int
    column: int  # first column in the m = 0 output (scalars); unused for gated groups
    gate: int  # first gate column (gated groups)
    # per m-major component: (m, side, column) in the per-m outputs, or None above the map's mmax
    components: tuple[tuple[int, int, int] | None, ...] = ()


@dataclass(frozen=True)
class RowsPlan:
    groups: tuple[GroupPlan, ...]
    gate_column: int  # first gate pre-activation column in the m = 0 output
    n_gated: int


def _source(outs, m: int, side: int, column: int, mul: int) -> torch.Tensor:
    return outs[0][:, column : column + mul] if m == 0 else outs[m][:, side, column : column + mul]


class _GatedRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan: RowsPlan, *outs):
        n_edges = outs[0].shape[0]
        gates = torch.sigmoid(outs[0][:, plan.gate_column : plan.gate_column + plan.n_gated])
        result, activated = [], []
        for g in plan.groups:
            if g.kind == "silu":
                y = torch.nn.functional.silu(outs[0][:, g.column : g.column + g.mul])[:, None, :]
            elif g.kind == "tanh":
                y = torch.tanh(outs[0][:, g.column : g.column + g.mul])[:, None, :]
                activated.append(y)
            else:
                y = outs[0].new_empty((n_edges, len(g.components), g.mul))
                gate = gates[:, g.gate : g.gate + g.mul]
                for c, slot in enumerate(g.components):
                    if slot is None:
                        y[:, c, :].zero_()
                    else:
                        torch.mul(_source(outs, *slot, g.mul), gate, out=y[:, c, :])
            result.append(y)
        ctx.plan = plan
        ctx.save_for_backward(gates, *activated, *outs)
        return tuple(result)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        plan = ctx.plan
        n_tanh = sum(g.kind == "tanh" for g in plan.groups)
        gates, *saved = ctx.saved_tensors
        activated, outs = iter(saved[:n_tanh]), saved[n_tanh:]
        grad_outs = [torch.empty_like(o) for o in outs]
        grad_gates = torch.empty_like(gates)
        for g, grad in zip(plan.groups, grads, strict=True):
            if g.kind == "silu":
                x = outs[0][:, g.column : g.column + g.mul]
                grad_outs[0][:, g.column : g.column + g.mul] = torch.ops.aten.silu_backward(grad[:, 0, :], x)
            elif g.kind == "tanh":
                y = next(activated)[:, 0, :]
                grad_outs[0][:, g.column : g.column + g.mul] = grad[:, 0, :] * (1.0 - y * y)
            else:
                gate = gates[:, g.gate : g.gate + g.mul]
                grad_gate = grad_gates[:, g.gate : g.gate + g.mul]
                first = True
                for c, slot in enumerate(g.components):
                    if slot is None:
                        continue
                    m, side, column = slot
                    target = (grad_outs[0][:, column : column + g.mul] if m == 0
                              else grad_outs[m][:, side, column : column + g.mul])
                    torch.mul(grad[:, c, :], gate, out=target)
                    source = _source(outs, m, side, column, g.mul)
                    if first:
                        torch.mul(grad[:, c, :], source, out=grad_gate)
                        first = False
                    else:
                        grad_gate.addcmul_(grad[:, c, :], source)
        columns = slice(plan.gate_column, plan.gate_column + plan.n_gated)
        torch.ops.aten.sigmoid_backward.grad_input(grad_gates, gates, grad_input=grad_outs[0][:, columns])
        return None, *grad_outs


def gated_rows(plan: RowsPlan, outs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gate's output groups from the SO(2) map's per-m outputs (``SO2Linear.bond_frame_rows``)."""
    return list(_GatedRows.apply(plan, *outs))


def plan_rows(gate, so2) -> RowsPlan:
    """Where ``gate``'s (``slem.model.gate.Gate``) inputs lie in the outputs of ``so2`` (``SO2Linear``,
    whose output irreps are the gate's input irreps)."""
    groups = []
    gate_start = 0
    for (mul, l, p), k_in in zip(gate.irreps_out.groups, gate.in_index(), strict=True):
        if l == 0:
            groups.append(GroupPlan("silu" if p == 1 else "tanh", mul, so2.column(0, k_in), 0))
            continue
        components = [(0, 0, so2.column(0, k_in))]
        components += [(m, side, so2.column(m, k_in)) if m <= so2.mmax else None
                       for m in range(1, l + 1) for side in (0, 1)]
        groups.append(GroupPlan("gated", mul, 0, gate_start, tuple(components)))
        gate_start += mul
    gate_column = so2.column(0, gate.k0_in) + gate.n_scalar if gate.n_gated else 0
    return RowsPlan(tuple(groups), gate_column, gate.n_gated)
