"""The SO(2) map's inputs: bond-frame components gathered into per-|m| rows, times their radial weights.

For each m the SO(2) map multiplies rows [x(-m) | x(+m)] (one row per edge) by its weights, and every
input channel first by a per-edge weight from the latent. Built from autograd primitives this costs a
concatenation and a broadcast product forward, and backward a product, a reduction over +-m and a stack
per input tensor to undo the ``unbind``: five passes over the rows where two suffice. ``gather_rows`` is one
autograd node with its own backward:

- forward, each product is written straight into its slot of the rows;
- backward, each slot's input gradient is written straight into its component of the input's gradient
  (every component of every input lands in exactly one slot, so nothing is zero-filled or summed), and
  the radial gradient is accumulated in place.

Double backward is not supported (nothing in training differentiates through the gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable


@dataclass(frozen=True)
class Slot:
    """One component of one input tensor in the rows of one m."""

    tensor: int  # position in the ``feats`` given to ``gather_rows``
    component: int  # bond-frame component (m-major) of that tensor
    start: int  # first column in the rows of this m
    width: int  # channels (the tensor's multiplicity)
    radial: int  # first column of its weights in the full radial matrix
    first: bool  # the first slot to use those columns (-m, or m = 0): writes, not adds, their gradient


def plan_slots(sources: list[list[int]], widths: list[int]) -> tuple[tuple[Slot, ...], ...]:
    """Per m, the slots of the rows [x(-m) | x(+m)] (only x(0) at m = 0).

    ``sources[m]`` lists the input tensors with l >= m, in channel order; ``widths[k]`` is tensor k's
    multiplicity. The radial columns of m follow those of m - 1, and -m and +m share them."""
    plan = []
    radial_start = 0
    for m, pieces in enumerate(sources):
        slots = []
        start = 0
        for side in ((0,) if m == 0 else (0, 1)):
            channel = radial_start
            for tensor in pieces:
                component = 0 if m == 0 else 2 * m - 1 + side
                slots.append(Slot(tensor, component, start, widths[tensor], channel, side == 0))
                start += widths[tensor]
                channel += widths[tensor]
        radial_start += sum(widths[tensor] for tensor in pieces)
        plan.append(tuple(slots))
    return tuple(plan)


def row_widths(plan: tuple[tuple[Slot, ...], ...]) -> list[int]:
    return [sum(s.width for s in slots) for slots in plan]


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan, radial, *feats):
        n_edges = radial.shape[0]
        rows = [radial.new_empty((n_edges, width)) for width in row_widths(plan)]
        for m, slots in enumerate(plan):
            for s in slots:
                torch.mul(feats[s.tensor][:, s.component, :], radial[:, s.radial : s.radial + s.width],
                          out=rows[m][:, s.start : s.start + s.width])
        ctx.plan = plan
        ctx.save_for_backward(radial, *feats)
        return tuple(rows)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_rows):
        radial, *feats = ctx.saved_tensors
        want_radial = ctx.needs_input_grad[1]
        want = ctx.needs_input_grad[2:]
        # every radial column is written by its first slot, so nothing is zero-filled
        grad_radial = torch.empty_like(radial) if want_radial else None
        grad_feats = [torch.empty_like(f) if w else None for f, w in zip(feats, want, strict=True)]
        for m, slots in enumerate(ctx.plan):
            for s in slots:
                grad = grad_rows[m][:, s.start : s.start + s.width]
                weights = radial[:, s.radial : s.radial + s.width]
                if grad_feats[s.tensor] is not None:
                    torch.mul(grad, weights, out=grad_feats[s.tensor][:, s.component, :])
                if grad_radial is not None:
                    x = feats[s.tensor][:, s.component, :]
                    target = grad_radial[:, s.radial : s.radial + s.width]
                    if s.first:
                        torch.mul(grad, x, out=target)
                    else:
                        target.addcmul_(grad, x)
        # every component up to the map's largest m has its slot; those above (an input l above every
        # output l) feed nothing and get a zero gradient
        first_unused = 2 * len(ctx.plan) - 1
        for grad in grad_feats:
            if grad is not None:
                grad[:, first_unused:, :].zero_()
        return None, grad_radial, *grad_feats


def gather_rows(plan: tuple[tuple[Slot, ...], ...], radial: torch.Tensor, feats: list[torch.Tensor]):
    """Per m, the rows (E, width) of ``plan`` from bond-frame ``feats`` (E, 2l+1, mul), each channel times
    its column of ``radial`` (E, n)."""
    return _GatherRows.apply(plan, radial, *feats)
