"""Lab-frame overlap blocks of a basis along one direction, in the model's full orbital layout.

The numbers are those of ``slem project``'s reference S: the same radial transforms (Q_MAX, Q_POINTS
of slem/projection/realspace.py) and two-centre tables, and zero beyond the sum of the two elements'
orbital cutoffs, as the projection stores them.
"""

from __future__ import annotations

import numpy as np

from slem.basis.orbital import ElementBasis
from slem.model.blocks import OrbitalLayout
from slem.projection.radial import BOHR, orbital_transforms
from slem.projection.realspace import Q_MAX, Q_POINTS
from slem.projection.twocentre import TwoCentreTable


def overlap_tables(
    bases: dict[str, ElementBasis], layout: OrbitalLayout, distances: np.ndarray, direction: np.ndarray
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({pair type: (len(distances), nf, nf)} blocks S(d * direction), onsite (n_species, nf, nf)).

    ``distances`` in Angstrom; pair type = species_i * n_species + species_j, as in the model."""
    q = np.linspace(0.0, Q_MAX, Q_POINTS)
    species = layout.species
    radial = {s: [(o.l, f) for o, f in zip(bases[s].orbitals, orbital_transforms(bases[s].orbitals, q),
                                           strict=True)] for s in species}
    mask = layout.orbital_mask.numpy()
    unit = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    bessel: dict = {}
    bessel_lmax = 2 * layout.lmax
    tables, onsite = {}, np.zeros((len(species), layout.nf, layout.nf))
    for a, sa in enumerate(species):
        for b, sb in enumerate(species):
            reach = bases[sa].cutoff + bases[sb].cutoff
            table = TwoCentreTable(radial[sa], radial[sb], q, 0, reach / BOHR, bessel, bessel_lmax)
            lab = table.blocks(np.outer(distances, unit) / BOHR)
            lab[distances >= reach] = 0.0
            full = np.zeros((len(distances), layout.nf, layout.nf))
            rows, cols = np.ix_(mask[a], mask[b])
            full[:, rows, cols] = lab
            tables[a * len(species) + b] = full
            if a == b:
                onsite[a][np.ix_(mask[a], mask[a])] = table.blocks(np.zeros((1, 3)))[0]
    return tables, onsite
