"""Overlap head that computes S from the basis instead of learning it (``model.overlap: basis``).

S_ij(R) is a two-centre integral of the basis orbitals: it depends on the basis and the bond vector
only, never on the environment. In the bond frame it is one function of the distance per shell pair
and |m| (overlap.py). This head tabulates those functions with the same two-centre integrals that
``slem project`` stores as the reference S (slem/projection/twocentre.py), on a 0.01 A grid with
cubic Hermite interpolation (within 1e-7 of the projection's blocks), and the onsite blocks at zero
distance. Nothing is trained. A learned overlap head fits these smooth functions only where the
training frames put bonds; on the MoS2 monolayer its S error alone moved the valence bands by 10-12
meV (docs/aiida.md, "Exact overlap"). The tables are buffers: a saved model carries them and needs no
basis file to predict.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from slem.basis.orbital import ElementBasis
from slem.data.orbitals import shells_to_string
from slem.model.blocks import OrbitalLayout
from slem.model.edges import EdgeGeometry
from slem.model.overlap import block_diag_wigner, bond_frame_values, sk_index, sk_values
from slem.model.wigner import bond_wigner, to_internal

TABLE_STEP = 0.01  # Angstrom
# A generic direction: the lab-frame blocks along it, rotated into the bond frame, must be pure
# Slater-Koster form, which checks the table's harmonics against the model's Wigner matrices.
_DIRECTION = np.array([0.36, -0.48, 0.8])


class BasisMismatchError(ValueError):
    """The basis given for the exact overlap does not belong to the model's data."""


class ExactOverlapHead(nn.Module):
    def __init__(self, layout: OrbitalLayout, max_distance: float):
        super().__init__()
        self.layout = layout
        value_idx, flat_idx, n_values = sk_index(layout)
        self.n_values = n_values
        self.register_buffer("value_idx", value_idx, persistent=False)
        self.register_buffer("flat_idx", flat_idx, persistent=False)
        n_species, n_points = len(layout.species), int(math.ceil(max_distance / TABLE_STEP)) + 2
        self.register_buffer("values", torch.zeros(n_species * n_species, n_points, n_values))
        self.register_buffer("slopes", torch.zeros(n_species * n_species, n_points, n_values))
        self.register_buffer("onsite_blocks", torch.zeros(n_species, layout.nf, layout.nf))
        self.register_buffer("filled", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def set_basis(self, bases: dict[str, ElementBasis]) -> None:
        """Tabulate S from ``bases`` (element -> ElementBasis, as ``slem.basis.orbital.read_basis`` gives)."""
        from slem.model.overlap_tables import overlap_tables  # scipy only when filling

        for element in self.layout.species:
            if element not in bases:
                raise BasisMismatchError(
                    f"the basis file has no {element}; give the basis the data were projected onto"
                )
            given = bases[element].shells
            wanted = shells_to_string(self.layout.shells_of[element])
            if given != wanted:
                raise BasisMismatchError(
                    f"the basis file's {element} is {given} but the model's is {wanted}; give the basis the "
                    "data were projected onto (the basis.h5 of its slem basis run)"
                )
        step, n_points = TABLE_STEP, self.values.shape[1]
        lab, onsite = overlap_tables(bases, self.layout, step * np.arange(n_points), _DIRECTION)
        direction = torch.tensor(_DIRECTION / np.linalg.norm(_DIRECTION), dtype=torch.float64)
        wigner = bond_wigner(to_internal(direction)[None], self.layout.lmax)
        rot = block_diag_wigner(wigner, self.layout)
        for pair, blocks in lab.items():
            blocks = torch.as_tensor(blocks)
            values, frame = sk_values(blocks, rot.expand(len(blocks), -1, -1), self.value_idx,
                                      self.flat_idx, self.n_values)
            identity = torch.eye(self.layout.nf, dtype=values.dtype).expand(len(values), -1, -1)
            rebuilt = bond_frame_values(values, identity, self.value_idx, self.flat_idx)
            off = float((frame - rebuilt.reshape(frame.shape)).abs().max())
            if off > 1e-8 * max(1.0, float(frame.abs().max())):
                raise RuntimeError(f"exact overlap tables are not of Slater-Koster form ({off:.2e}): "
                                   "the two-centre harmonics and the model's Wigner matrices disagree")
            slopes = np.gradient(values.numpy(), step, axis=0, edge_order=2)
            self.values[pair] = values.to(self.values.dtype)
            self.slopes[pair] = torch.as_tensor(slopes).to(self.slopes.dtype)
        self.onsite_blocks.copy_(torch.as_tensor(onsite).to(self.onsite_blocks.dtype))
        self.filled.fill_(True)

    def bond_values(self, geom: EdgeGeometry) -> torch.Tensor:
        if not bool(self.filled):
            raise RuntimeError(
                "the exact overlap head has no tables: build the model with set_basis(read_basis(path)) "
                "(slem train reads dataset.basis_path) or load a trained model"
            )
        centre, neigh = geom.edge_index
        pair = geom.species[centre] * len(self.layout.species) + geom.species[neigh]
        n_points = self.values.shape[1]
        t = geom.length / TABLE_STEP
        k = t.floor().long().clamp(0, n_points - 2)
        u = (t - k.to(t.dtype)).clamp(0.0, 1.0)[:, None]
        h00, h10 = (1 + 2 * u) * (1 - u) ** 2, u * (1 - u) ** 2
        h01, h11 = u * u * (3 - 2 * u), u * u * (u - 1)
        values = (h00 * self.values[pair, k] + h01 * self.values[pair, k + 1]
                  + TABLE_STEP * (h10 * self.slopes[pair, k] + h11 * self.slopes[pair, k + 1]))
        return torch.where((t < n_points - 1)[:, None], values, torch.zeros_like(values))

    def forward(self, geom: EdgeGeometry) -> tuple[torch.Tensor, torch.Tensor]:
        hopping = bond_frame_values(self.bond_values(geom), block_diag_wigner(geom.wigner, self.layout),
                                    self.value_idx, self.flat_idx)
        return self.onsite_blocks[geom.species], hopping

    @torch.no_grad()
    def fit(self, samples: list[tuple[EdgeGeometry, torch.Tensor, torch.Tensor]]) -> None:
        """Nothing to fit; the training targets are checked against the tables instead, so that a
        basis file that is not the data's is refused before any training step."""
        worst = 0.0
        for geom, onsite_full, hopping_full in samples:
            onsite, hopping = self.forward(geom)
            worst = max(worst, float((onsite - onsite_full).abs().max()),
                        float((hopping - hopping_full).abs().max()) if len(hopping) else 0.0)
        if worst > 1e-5:
            raise BasisMismatchError(
                f"the exact overlap of the basis file differs from the training data's S by up to "
                f"{worst:.2e}: the data were projected onto another basis (or with another basis version); "
                "give the basis.h5 of the data's slem basis run, or use model.overlap: learned"
            )
