"""Helpers shared by the model tests: tiny graphs and an e3nn-style equivariance checker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from slem.data.neighbors import neighbor_list
from slem.data.orbitals import parse_shells
from slem.model import SlemConfig
from slem.model.wigner import orbital_wigner


def rand_rot(seed: int | None = None) -> torch.Tensor:
    """A random proper rotation, orthogonal to float64 precision (e3nn's rand_matrix is float32)."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    q, r = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=gen))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def make_graph(atoms: Atoms, species: list[str], cutoffs: dict[str, float], dtype=torch.float64) -> dict:
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, atoms.get_chemical_symbols(), cutoffs)
    shift = nl.shifts.astype(np.float64) @ atoms.cell.array
    return {
        "pos": torch.tensor(atoms.positions, dtype=dtype),
        "species": torch.tensor([species.index(s) for s in atoms.get_chemical_symbols()]),
        "edge_index": torch.tensor(np.stack([nl.i, nl.j])),
        "edge_shift": torch.tensor(shift, dtype=dtype),
        "batch": torch.zeros(len(atoms), dtype=torch.long),
    }


def small_cluster(seed: int = 0) -> Atoms:
    """A 5-atom Si/C molecule-like cluster (no periodicity), all within each other's cutoffs."""
    rng = np.random.default_rng(seed)
    pos = np.array([[0, 0, 0], [1.9, 0.2, 0.1], [-0.3, 1.8, 0.4], [0.5, -0.4, 1.9], [1.2, 1.4, 1.3]])
    return Atoms("SiSiCSiC", positions=pos + 0.1 * rng.standard_normal(pos.shape), pbc=False)


def small_config(basis=None, heads=("H", "S"), n_layers=2, dtype="float64", **kw) -> SlemConfig:
    basis = basis or {"Si": "1s1p", "C": "1s1p"}
    species = list(basis)
    return SlemConfig(
        species=species,
        basis=basis,
        r_cut={s: 5.0 for s in species},
        n_layers=n_layers,
        hidden_irreps=kw.pop("hidden_irreps", "8x0e+6x1o+4x2e"),
        latent_dim=16,
        latent_hidden=[16],
        n_radial=6,
        heads=list(heads),
        avg_num_neighbors=4.0,
        overlap_hidden=[16],
        dtype=dtype,
        **kw,
    )


def silicon(n: int = 1, rattle: float = 0.05, seed: int = 0, cubic: bool = True) -> Atoms:
    """Diamond Si, n x n x n conventional (8-atom) cells, rattled; n=2 is the 64-atom Si64 setting."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=cubic).repeat((n, n, n))
    atoms.rattle(rattle, seed=seed)
    return atoms


def per_atom_blocks(flat: torch.Tensor, rows: list[int], cols: list[int]) -> list[torch.Tensor]:
    out, start = [], 0
    for r, c in zip(rows, cols, strict=True):
        out.append(flat[start : start + r * c].view(r, c))
        start += r * c
    assert start == flat.numel()
    return out


def assert_equivariant(
    model,
    graph: dict,
    rot: torch.Tensor,
    inversion: bool,
    atol: float,
    rtol: float = 0.0,
    species_shells: dict[int, list[int]] | None = None,
) -> float:
    """Check blocks transform as D_a B D_b^T under x -> +-R x; returns the max abs error."""
    species = graph["species"].tolist()
    ei = graph["edge_index"]
    if species_shells is None:
        species_shells = {k: parse_shells(model.config.basis[s]) for k, s in enumerate(model.config.species)}
    sign = -1.0 if inversion else 1.0
    rot = rot.to(graph["pos"].dtype)
    moved = dict(graph)
    moved["pos"] = sign * graph["pos"] @ rot.T
    moved["edge_shift"] = sign * graph["edge_shift"] @ rot.T
    with torch.no_grad():
        out, out_r = model(graph), model(moved)
    d = {k: orbital_wigner(rot.double(), sh, inversion).to(rot.dtype) for k, sh in species_shells.items()}
    nor = {k: m.shape[0] for k, m in d.items()}
    worst = 0.0
    for name in out:
        if name.endswith("_onsite"):
            rows = cols = species
        else:
            rows, cols = [species[i] for i in ei[0].tolist()], [species[j] for j in ei[1].tolist()]
        a = per_atom_blocks(out[name], [nor[r] for r in rows], [nor[c] for c in cols])
        b = per_atom_blocks(out_r[name], [nor[r] for r in rows], [nor[c] for c in cols])
        for x, y, r, c in zip(a, b, rows, cols, strict=True):
            expect = d[r] @ x @ d[c].T
            err = float((expect - y).abs().max())
            scale = float(x.abs().max())
            worst = max(worst, err)
            assert err <= atol + rtol * scale, f"{name}: equivariance error {err:.3e} (scale {scale:.3e})"
    return worst


def test_hidden_irreps_follow_the_basis_by_default():
    # up to l = 2 x the largest orbital l: d -> 4, f -> 6 (the last width repeats)
    spd = SlemConfig(species=["Si"], basis={"Si": "2s2p1d"}, r_cut={"Si": 4.3})
    assert spd.hidden_irreps == "32x0e+32x1o+16x2e+8x3o+8x4e"
    sp = SlemConfig(species=["C"], basis={"C": "1s1p"}, r_cut={"C": 3.0})
    assert sp.hidden_irreps == "32x0e+32x1o+16x2e"
    spdf = SlemConfig(
        species=["W", "Si"], basis={"W": "3s2p2d1f", "Si": "1s1p"}, r_cut=4.0, hidden_widths=[32, 16, 8, 8, 4]
    )
    assert spdf.hidden_irreps == "32x0e+16x1o+8x2e+8x3o+4x4e+4x5o+4x6e"
    # the resolved string is what a model file keeps, so a reload builds the same network
    assert SlemConfig.from_dict(spdf.to_dict()).hidden_irreps == spdf.hidden_irreps
    # the fast protocol's widths give exactly the irreps it used to spell out for Si DZP
    fast = SlemConfig(species=["Si"], basis={"Si": "2s2p1d"}, r_cut=4.3, hidden_widths=[32, 16, 8, 8, 4])
    assert fast.hidden_irreps == "32x0e+16x1o+8x2e+8x3o+4x4e"
    with pytest.raises(ValueError, match="hidden_widths"):
        SlemConfig(species=["Si"], basis={"Si": "1s1p"}, r_cut=4.0, hidden_widths=[32, 0])
