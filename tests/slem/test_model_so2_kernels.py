"""The SO(2) layer's hand-written autograd nodes against plain autograd, in float64."""

from __future__ import annotations

import pytest
import torch

from slem.model.so2 import SMALL_BMM, _SmallRotate, rotate
from slem.model.so2_gather import gather_rows, plan_slots

# three input tensors: l = 0 (4 channels), l = 1 (3), l = 2 (2); the map stops at m = 1, so the l = 2
# tensor's |m| = 2 components feed nothing
LS, WIDTHS, MMAX = [0, 1, 2], [4, 3, 2], 1


def inputs(n_edges: int = 7, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.randn(n_edges, 2 * l + 1, w, generator=gen, dtype=torch.float64, requires_grad=True)
             for l, w in zip(LS, WIDTHS, strict=True)]
    sources = [[k for k, l in enumerate(LS) if l >= m] for m in range(MMAX + 1)]
    n_radial = sum(WIDTHS[k] for src in sources for k in src)
    radial = torch.randn(n_edges, n_radial, generator=gen, dtype=torch.float64, requires_grad=True)
    return plan_slots(sources, WIDTHS), sources, radial, feats


def reference_rows(sources, radial, feats):
    """The rows by concatenation and broadcasting, as the layer computed them before."""
    rows, start = [], 0
    for m, src in enumerate(sources):
        n = sum(WIDTHS[k] for k in src)
        weights = radial[:, start : start + n]
        start += n
        if m == 0:
            rows.append(torch.cat([feats[k][:, 0, :] for k in src], dim=1) * weights)
        else:
            pieces = [feats[k][:, 2 * m - 1 + side, :] for side in (0, 1) for k in src]
            rows.append(torch.cat(pieces, dim=1) * weights.repeat(1, 2))
    return rows


def test_gather_rows_matches_concatenation_forward_and_backward():
    plan, sources, radial, feats = inputs()
    got = gather_rows(plan, radial, feats)
    want = reference_rows(sources, radial, feats)
    assert [tuple(r.shape) for r in got] == [tuple(r.shape) for r in want]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-15)
    cotangents = [torch.randn_like(r) for r in want]
    grads = torch.autograd.grad(got, [radial, *feats], cotangents)
    grads_ref = torch.autograd.grad(want, [radial, *feats], cotangents)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)
    # the l = 2 components beyond the map's mmax get an exact zero, not uninitialised memory
    assert torch.count_nonzero(grads[3][:, 3:, :]) == 0


def test_gather_rows_gradcheck_and_partial_requires_grad():
    plan, _, radial, feats = inputs(n_edges=3, seed=1)
    assert torch.autograd.gradcheck(lambda r, *f: gather_rows(plan, r, list(f)), (radial, *feats))
    frozen = [f.detach() for f in feats]
    rows = gather_rows(plan, radial, frozen)
    (grad,) = torch.autograd.grad(sum(r.sum() for r in rows), [radial])
    assert grad.shape == radial.shape


def test_gather_rows_without_edges():
    plan, _, radial, feats = inputs(n_edges=0)
    rows = gather_rows(plan, radial, feats)
    assert [r.shape[0] for r in rows] == [0, 0]
    sum(r.sum() for r in rows).backward()
    assert feats[1].grad.shape == feats[1].shape


@pytest.mark.parametrize("transpose", [False, True])
def test_small_rotation_matches_bmm_with_gradients(transpose):
    gen = torch.Generator().manual_seed(2)
    rotation = torch.randn(6, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    f = torch.randn(6, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert 3 * 3 * 5 < SMALL_BMM
    r = rotation.transpose(1, 2) if transpose else rotation
    torch.testing.assert_close(rotate(r, f), torch.bmm(r, f), rtol=0, atol=1e-14)
    assert torch.autograd.gradcheck(_SmallRotate.apply, (r, f))
    # the bond rotations carry no gradient in the model: only f's is computed
    out = rotate(r.detach(), f)
    assert out.grad_fn is not None and "SmallRotate" in type(out.grad_fn).__name__
    (grad,) = torch.autograd.grad(out, [f], torch.ones_like(out))
    torch.testing.assert_close(grad, r.detach().transpose(1, 2).sum(2, keepdim=True).expand_as(f),
                               rtol=0, atol=1e-14)


def test_balanced_rms_matches_autograd_and_gradcheck():
    from slem.model.norm import balanced_rms

    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(5, 2 * l + 1, mul, generator=gen, dtype=torch.float64, requires_grad=True)
             for l, mul in [(1, 3), (2, 2), (3, 1)]]
    weights = [torch.randn(f.shape[2], generator=gen, dtype=torch.float64, requires_grad=True) for f in feats]
    eps = 1e-5
    got = balanced_rms(feats, weights, eps)
    ms = torch.stack([f.pow(2).mean(dim=(1, 2)) for f in feats]).mean(0)
    want = [f * torch.rsqrt(ms + eps)[:, None, None] * w for f, w in zip(feats, weights, strict=True)]
    cotangents = [torch.randn_like(y) for y in want]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)
    inputs = [*feats, *weights]
    grads = torch.autograd.grad(got, inputs, cotangents)
    for a, b in zip(grads, torch.autograd.grad(want, inputs, cotangents), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda *t: tuple(balanced_rms(list(t[:3]), list(t[3:]), eps)),
                                    tuple(inputs))


@pytest.mark.parametrize("irreps_out", ["4x0e+2x0o+3x1o+2x1e+2x2e", "3x1o+2x2e", "4x0e+2x0o"])
def test_gated_rows_matches_gate_of_assembled_outputs(irreps_out):
    """Odd scalars (tanh), no even scalars, no gated groups, and l = 2 outputs of an SO(2) map whose
    inputs stop at l = 1 (their |m| = 2 components are zero)."""
    from slem.model.gate import Gate
    from slem.model.gated_rows import gated_rows, plan_rows
    from slem.model.irreps import Irreps
    from slem.model.so2 import SO2Linear

    torch.manual_seed(4)
    gate = Gate(Irreps.parse(irreps_out))
    irreps_in = Irreps.parse("3x0e+2x1o+1x1e")
    so2 = SO2Linear(irreps_in, gate.irreps_in, latent_dim=5).double()
    n_edges = 4
    feats = [torch.randn(n_edges, 2 * l + 1, mul, dtype=torch.float64, requires_grad=True)
             for mul, l, _ in irreps_in.groups]
    latent = torch.randn(n_edges, 5, dtype=torch.float64, requires_grad=True)
    parts = [(irreps_in, feats)]
    got = gated_rows(plan_rows(gate, so2), so2.bond_frame_rows(parts, latent))
    want = gate(so2.bond_frame_parts(parts, latent))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)
    cotangents = [torch.randn_like(y) for y in want]
    inputs = [*feats, latent]
    grads = torch.autograd.grad(got, inputs, cotangents)
    for a, b in zip(grads, torch.autograd.grad(want, inputs, cotangents), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    plan = plan_rows(gate, so2)
    outs = [o.detach().requires_grad_() for o in so2.bond_frame_rows(parts, latent)]
    assert torch.autograd.gradcheck(lambda *o: tuple(gated_rows(plan, list(o))), tuple(outs))
