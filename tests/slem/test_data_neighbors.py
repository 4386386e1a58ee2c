"""Neighbour lists against a brute-force search over cell images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_data_synthetic import random_structure

from slem.data.neighbors import CutoffError, neighbor_list


def brute_force(positions, cell, pbc, symbols, cutoffs):
    radii = np.array([cutoffs[s] for s in symbols])
    # enough images along each periodic axis to reach the largest cutoff
    heights = 1 / np.linalg.norm(np.linalg.inv(cell).T, axis=1) if np.linalg.det(cell) else np.ones(3)
    reach = [int(np.ceil(radii.max() / h)) + 1 if p else 0 for h, p in zip(heights, pbc, strict=True)]
    edges = set()
    for r in itertools.product(*(range(-n, n + 1) for n in reach)):
        shift = np.array(r) @ cell
        for i, j in itertools.product(range(len(positions)), repeat=2):
            if i == j and not any(r):
                continue
            d = np.linalg.norm(positions[j] + shift - positions[i])
            if d < 0.5 * (radii[i] + radii[j]):
                edges.add((i, j, *r))
    return edges


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, False)])
def test_matches_brute_force_triclinic_with_per_species_cutoffs(pbc):
    numbers, positions, cell, pbc = random_structure(7, n_atoms=5, pbc=pbc)
    symbols = ["Si" if z == 14 else "C" for z in numbers]
    cutoffs = {"Si": 6.5, "C": 3.0}  # larger than the cell: many periodic self-images
    nl = neighbor_list(positions, cell, pbc, symbols, cutoffs)
    found = {(int(i), int(j), *map(int, r)) for i, j, r in zip(nl.i, nl.j, nl.shifts, strict=True)}
    assert found == brute_force(positions, cell, pbc, symbols, cutoffs)
    assert len(found) == len(nl)
    if pbc.all():
        assert any(i == j for i, j, *_ in found)  # periodic self images are edges
    np.testing.assert_allclose(nl.vectors, positions[nl.j] + nl.shifts @ cell - positions[nl.i])
    np.testing.assert_allclose(nl.distances, np.linalg.norm(nl.vectors, axis=1))
    keys = list(zip(nl.i, nl.j, *nl.shifts.T, strict=True))
    assert keys == sorted(keys)


def test_pair_cutoff_is_mean_of_species_cutoffs():
    positions = np.array([[0.0, 0, 0], [3.0, 0, 0]])
    symbols = ["Si", "C"]
    cell = np.zeros((3, 3))
    assert len(neighbor_list(positions, cell, [False] * 3, symbols, {"Si": 4.1, "C": 2.0})) == 2  # 3.05 > 3
    assert len(neighbor_list(positions, cell, [False] * 3, symbols, {"Si": 3.9, "C": 2.0})) == 0  # 2.95 < 3


def test_errors_name_the_problem():
    positions = np.zeros((1, 3))
    with pytest.raises(CutoffError, match="no cutoff given for species \\['Si'\\]"):
        neighbor_list(positions, np.eye(3), [True] * 3, ["Si"], {"C": 3.0})
    with pytest.raises(CutoffError, match="positive"):
        neighbor_list(positions, np.eye(3), [True] * 3, ["Si"], {"Si": -1.0})
    with pytest.raises(CutoffError, match="zero lattice vector"):
        neighbor_list(positions, np.diag([3.0, 3.0, 0.0]), [True] * 3, ["Si"], {"Si": 2.0})
    assert len(neighbor_list(np.zeros((0, 3)), np.eye(3), [True] * 3, [], {"Si": 2.0})) == 0
