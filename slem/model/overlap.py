"""Invariant Slater-Koster-like overlap head.

In the bond frame the overlap of shells a (on i) and b (on j) is diagonal in m with equal +m and
-m entries (the two-centre integral is invariant under rotations about, and reflections through
planes containing, the bond), so it is one number per (a, b, |m|): sigma, pi, delta, phi. Each is
an MLP of (Z_i, Z_j, r) times the cutoff envelope; the block is rotated to the lab frame with the
bond's Wigner-D. Onsite overlap blocks are per-species constants, identity-shaped per l.
"""

from __future__ import annotations

import torch
from torch import nn

from slem.model.blocks import OrbitalLayout
from slem.model.edges import EdgeGeometry
from slem.model.radial import BesselBasis, ScalarMLP


def sk_index(layout: OrbitalLayout) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(value_idx, flat_idx, n_values): bond-frame entry flat_idx[k] of an (nf x nf) block holds
    value value_idx[k], one value per (shell a, shell b, |m|)."""
    nf = layout.nf
    value_idx, flat_idx = [], []
    n_values = 0
    for a, b in layout.shell_pairs(upper=False):
        la, lb = layout.shells[a], layout.shells[b]
        oa, ob = layout.offsets[a] + la, layout.offsets[b] + lb
        for m in range(min(la, lb) + 1):
            for sm in {m, -m}:
                value_idx.append(n_values)
                flat_idx.append((oa + sm) * nf + ob + sm)
            n_values += 1
    return torch.tensor(value_idx), torch.tensor(flat_idx), n_values


def bond_frame_values(values: torch.Tensor, rot: torch.Tensor, value_idx: torch.Tensor,
                      flat_idx: torch.Tensor) -> torch.Tensor:
    """(E, nf*nf) bond-frame blocks from (E, n_values); rotated to the lab frame with ``rot``."""
    n_edges, nf = values.shape[0], rot.shape[1]
    frame = values.new_zeros((n_edges, nf * nf))
    frame[:, flat_idx] = values[:, value_idx]
    return rot @ frame.view(n_edges, nf, nf) @ rot.transpose(1, 2)


def sk_values(blocks: torch.Tensor, rot: torch.Tensor, value_idx: torch.Tensor, flat_idx: torch.Tensor,
              n_values: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lab-frame blocks (E, nf, nf) -> (bond-frame values (E, n_values), bond-frame blocks (E, nf*nf))."""
    nf = blocks.shape[1]
    frame = (rot.transpose(1, 2) @ blocks @ rot).reshape(-1, nf * nf)
    sums = frame.new_zeros((frame.shape[0], n_values)).index_add_(1, value_idx, frame[:, flat_idx])
    counts = frame.new_zeros(n_values).index_add_(0, value_idx, torch.ones_like(value_idx, dtype=frame.dtype))
    return sums / counts, frame


class OverlapHead(nn.Module):
    def __init__(self, layout: OrbitalLayout, n_radial: int, hidden: list[int]):
        super().__init__()
        self.layout = layout
        n_species = len(layout.species)
        value_idx, flat_idx, n_values = sk_index(layout)
        self.n_values = n_values
        self.register_buffer("value_idx", value_idx, persistent=False)
        self.register_buffer("flat_idx", flat_idx, persistent=False)
        self.bessel = BesselBasis(n_radial)
        self.mlp = ScalarMLP([2 * n_species + n_radial, *hidden, n_values])
        self.register_buffer("scale", torch.ones(n_species * n_species, n_values))
        # onsite: one constant per species and shell pair (a <= b) of equal l
        onsite = [(a, b) for a, b in layout.shell_pairs(upper=True) if layout.shells[a] == layout.shells[b]]
        self.onsite_pairs = onsite
        init = torch.tensor([1.0 if a == b else 0.0 for a, b in onsite])
        self.onsite = nn.Parameter(init.repeat(n_species, 1))
        self._onsite_pattern = self._make_onsite_pattern()

    def _make_onsite_pattern(self) -> torch.Tensor:
        """(n_pairs, nf, nf) symmetric basis matrices, so onsite = constants @ pattern."""
        nf = self.layout.nf
        pat = torch.zeros(len(self.onsite_pairs), nf, nf, dtype=torch.float64)
        for k, (a, b) in enumerate(self.onsite_pairs):
            l = self.layout.shells[a]
            ra = self.layout.offsets[a] + torch.arange(2 * l + 1)
            rb = self.layout.offsets[b] + torch.arange(2 * l + 1)
            pat[k, ra, rb] = 1.0
            pat[k, rb, ra] = 1.0
        return pat

    def bond_values(self, geom: EdgeGeometry) -> torch.Tensor:
        centre, neigh = geom.edge_index
        x = torch.cat([geom.onehot[centre], geom.onehot[neigh], self.bessel(geom.length, geom.r_cut)], dim=1)
        pair_type = geom.species[centre] * len(self.layout.species) + geom.species[neigh]
        return self.mlp(x) * geom.fcut[:, None] * self.scale[pair_type]

    def forward(self, geom: EdgeGeometry) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.bond_values(geom)
        hopping = bond_frame_values(values, block_diag_wigner(geom.wigner, self.layout), self.value_idx,
                                    self.flat_idx)
        pattern = self._onsite_pattern.to(dtype=values.dtype, device=values.device)
        onsite = torch.einsum("sk,kab->sab", self.onsite, pattern)[geom.species]
        return onsite, hopping

    @torch.no_grad()
    def fit(self, samples: list[tuple[EdgeGeometry, torch.Tensor, torch.Tensor]]) -> None:
        """Onsite constants from target means; SK scales from the RMS of the targets in the bond frame.

        ``samples`` holds (geometry, full onsite targets, full hopping targets) per graph."""
        n_species = len(self.layout.species)
        sk_all, types_all, onsite_all, species_all = [], [], [], []
        for geom, onsite_full, hopping_full in samples:
            rot = block_diag_wigner(geom.wigner, self.layout)
            sk_all.append(sk_values(hopping_full, rot, self.value_idx, self.flat_idx, self.n_values)[0])
            types_all.append(geom.species[geom.edge_index[0]] * n_species + geom.species[geom.edge_index[1]])
            onsite_all.append(onsite_full)
            species_all.append(geom.species)
        sk, pair_type = torch.cat(sk_all), torch.cat(types_all)
        onsite_full, species = torch.cat(onsite_all), torch.cat(species_all)
        for t in range(n_species * n_species):
            sel = pair_type == t
            if bool(sel.any()):
                rms = sk[sel].pow(2).mean(0).sqrt()
                top = float(rms.max())
                self.scale[t] = rms.clamp_min(1e-3 * top if top > 0 else 1.0).to(self.scale.dtype)
        pattern = self._onsite_pattern.to(dtype=onsite_full.dtype, device=onsite_full.device)
        norms = pattern.pow(2).sum(dim=(1, 2))
        for s in range(n_species):
            sel = species == s
            if bool(sel.any()):
                mean_block = onsite_full[sel].mean(0)
                constants = torch.einsum("kab,ab->k", pattern, mean_block) / norms
                self.onsite[s] = constants.to(self.onsite.dtype)


def block_diag_wigner(wigner: list[torch.Tensor], layout: OrbitalLayout) -> torch.Tensor:
    n_edges = wigner[0].shape[0]
    out = wigner[0].new_zeros((n_edges, layout.nf, layout.nf))
    for off, l in zip(layout.offsets, layout.shells, strict=True):
        out[:, off : off + 2 * l + 1, off : off + 2 * l + 1] = wigner[l]
    return out


def check_overlap_positive(s_k: torch.Tensor, tol: float = 1e-8) -> None:
    """Raise if an overlap matrix (or a batch of S(k)) is not Hermitian positive definite."""
    mats = s_k if s_k.dim() == 3 else s_k[None]
    herm = 0.5 * (mats + mats.conj().transpose(-1, -2))
    if float((mats - herm).abs().max()) > 1e-6 * max(1.0, float(mats.abs().max())):
        raise ValueError("overlap matrix is not Hermitian; check the block assembly (S_ij(R) = S_ji(-R)^T)")
    low = torch.linalg.eigvalsh(herm).min(dim=-1).values
    if float(low.min()) <= tol:
        k = int(low.argmin())
        raise ValueError(
            f"overlap matrix {k} is not positive definite (smallest eigenvalue {float(low.min()):.3e}); "
            "the overlap model is not trained for this geometry (atoms too close, or fit_rescale / training "
            "was not run), so H(k) cannot be diagonalised as a generalised eigenproblem"
        )
