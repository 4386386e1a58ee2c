"""Distance-dependent output statistics for hopping blocks, with a two-centre baseline.

Hopping magnitudes fall by orders of magnitude between nearest neighbours and the cutoff, so one
std per species pair (``Rescale``) leaves the network to produce both the eV-sized nearest-neighbour
terms and the meV tails at unit scale. Here, per pair type and output channel (opt-in through
``SlemConfig.bond_rescale_knots``; measured gains are in docs/model.md):

* a baseline b(r) Y_l(r_hat) for every channel of natural parity. In the bond frame a two-centre
  integral has only the m = 0 component (Slater-Koster), which in the global frame is exactly the
  unit-norm spherical harmonic of the bond direction; b(r) is the least-squares two-centre part of
  the training targets, so the network learns only the environment-dependent remainder;
* a scale s(r), the RMS of that remainder at distance r.

b and s are piecewise linear in r on ``n_knots`` knots spanning the training distances of the pair
type (clamped outside), fitted by least squares with a curvature penalty that bridges the empty
gaps between neighbour shells. Both depend only on the edge's own vector, so equivariance and strict
locality are untouched.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from slem.model.irreps import Feats, Irreps


def _hat_coordinates(length: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, n_knots: int):
    """Left knot index and weight of the right knot for piecewise-linear interpolation."""
    u = ((length.clamp(lo, hi) - lo) / (hi - lo)) * (n_knots - 1)
    left = u.floor().clamp(0, n_knots - 2)
    return left.long(), u - left


def _smooth_fit(length: torch.Tensor, values: torch.Tensor, lo: float, hi: float,
                n_knots: int) -> torch.Tensor:
    """Knot values (n_knots, C) of the piecewise-linear least-squares fit of values (n, C) against length."""
    x = length.to(torch.float64)
    left, w = _hat_coordinates(x, x.new_tensor(lo), x.new_tensor(hi), n_knots)
    design = x.new_zeros((x.shape[0], n_knots))
    design.scatter_add_(1, left[:, None], (1 - w)[:, None])
    design.scatter_add_(1, left[:, None] + 1, w[:, None])
    gram = design.T @ design
    weight = max(float(gram.trace()) / n_knots, 1e-12)
    curvature = torch.diff(torch.eye(n_knots, dtype=torch.float64), n=2, dim=0)
    ridge = torch.eye(n_knots, dtype=torch.float64)
    system = gram + 1e-2 * weight * curvature.T @ curvature + 1e-9 * weight * ridge
    return torch.linalg.solve(system, design.T @ values.to(torch.float64))


class BondRescale(nn.Module):
    def __init__(self, irreps: Irreps, n_types: int, n_knots: int):
        super().__init__()
        if n_knots < 2:
            raise ValueError("a distance-dependent rescale needs at least 2 knots")
        self.irreps, self.n_knots = irreps, n_knots
        self.natural = [p == (-1) ** l for _, l, p in irreps.groups]
        self.register_buffer("r_lo", torch.zeros(n_types))
        self.register_buffer("r_hi", torch.ones(n_types))
        for g, (mul, _, _) in enumerate(irreps.groups):
            # (n_types * n_knots, mul): row t * n_knots + k is knot k of pair type t
            self.register_buffer(f"scale_{g}", torch.ones(n_types * n_knots, mul))
            self.register_buffer(f"base_{g}", torch.zeros(n_types * n_knots, mul))

    def _unit_harmonics(self, vec_internal: torch.Tensor) -> list[torch.Tensor]:
        lmax = self.irreps.lmax
        sh = o3.spherical_harmonics(list(range(lmax + 1)), vec_internal, normalize=True, normalization="norm")
        return list(torch.split(sh, [2 * l + 1 for l in range(lmax + 1)], dim=1))

    def forward(self, feats: Feats, types: torch.Tensor, length: torch.Tensor,
                vec_internal: torch.Tensor) -> Feats:
        left, w = _hat_coordinates(length, self.r_lo[types], self.r_hi[types], self.n_knots)
        row = types * self.n_knots + left
        w = w[:, None].to(feats[0].dtype)

        def at(table: torch.Tensor) -> torch.Tensor:
            return table[row] * (1 - w) + table[row + 1] * w

        sh = self._unit_harmonics(vec_internal)
        out = []
        for g, (f, (_, l, _)) in enumerate(zip(feats, self.irreps.groups, strict=True)):
            y = f * at(getattr(self, f"scale_{g}"))[:, None, :]
            if self.natural[g]:
                y = y + sh[l][:, :, None] * at(getattr(self, f"base_{g}"))[:, None, :]
            out.append(y)
        return out

    @torch.no_grad()
    def fit(self, target: Feats, types: torch.Tensor, length: torch.Tensor,
            vec_internal: torch.Tensor) -> set[int]:
        """Fit baselines and scales per pair type; types without samples keep scale 1 and no baseline.
        Returns the types that had samples."""
        sh = self._unit_harmonics(vec_internal)
        k = self.n_knots
        seen = set()
        for t in range(self.r_lo.shape[0]):
            sel = types == t
            if not bool(sel.any()):
                continue
            seen.add(t)
            r = length[sel]
            lo, hi = float(r.min()), float(r.max())
            hi = max(hi, lo + 1e-3)
            self.r_lo[t], self.r_hi[t] = lo, hi
            mean_squares = []
            for g, (_, l, _) in enumerate(self.irreps.groups):
                x = target[g][sel].to(torch.float64)
                if self.natural[g]:
                    proj = (x * sh[l][sel][:, :, None].to(x.dtype)).sum(1)
                    knots = _smooth_fit(r, proj, lo, hi, k)
                    getattr(self, f"base_{g}")[t * k:(t + 1) * k] = knots.to(self.r_lo.dtype)
                    left, w = _hat_coordinates(r.to(torch.float64), r.new_tensor(lo, dtype=torch.float64),
                                               r.new_tensor(hi, dtype=torch.float64), k)
                    fitted = knots[left] * (1 - w[:, None]) + knots[left + 1] * w[:, None]
                    x = x - sh[l][sel][:, :, None].to(x.dtype) * fitted[:, None, :]
                mean_squares.append(_smooth_fit(r, x.pow(2).mean(1), lo, hi, k))
            # channels with no spread keep a small scale so the network can still move them;
            # the floor is relative to the largest scale of this pair type
            top = max(float(m.clamp_min(0).max()) for m in mean_squares) ** 0.5
            floor = 1e-3 * top if top > 0 else 1.0
            for g, m in enumerate(mean_squares):
                scale = m.clamp_min(0).sqrt().clamp_min(floor)
                getattr(self, f"scale_{g}")[t * k:(t + 1) * k] = scale.to(self.r_lo.dtype)
        return seen

    @torch.no_grad()
    def mix_types(self, target: int, first: int, second: int) -> None:
        """Statistics of ``target`` from two fitted pair types, knot by knot on the fraction of each one's
        distance range: mean range and baseline, geometric-mean scale. A Harrison-like prior for a species
        pair the training data lacks (slem.model.fit.fill_unseen_pairs), not a fit."""
        k = self.n_knots
        rows = [slice(t * k, (t + 1) * k) for t in (target, first, second)]
        self.r_lo[target] = 0.5 * (self.r_lo[first] + self.r_lo[second])
        self.r_hi[target] = 0.5 * (self.r_hi[first] + self.r_hi[second])
        for g in range(len(self.irreps.groups)):
            scale, base = getattr(self, f"scale_{g}"), getattr(self, f"base_{g}")
            scale[rows[0]] = (scale[rows[1]] * scale[rows[2]]).sqrt()
            base[rows[0]] = 0.5 * (base[rows[1]] + base[rows[2]])
