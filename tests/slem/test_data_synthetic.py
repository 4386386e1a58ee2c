"""Random but physically consistent frames for the data tests, and checks of that generator.

``random_frame`` stores every pair within the per-species cutoffs in both directions with
X_ji(-R) = X_ij(R)^T and symmetric onsite blocks, the way the projection writes frames.
"""

from __future__ import annotations

import numpy as np

from slem.data.frame import Frame, frame_from_blocks
from slem.data.neighbors import neighbor_list
from slem.data.orbitals import n_orbitals

BASIS = {"Si": "2s2p1d", "C": "1s1p1d1f"}
CUTOFFS = {"Si": 5.0, "C": 4.0}


def random_structure(seed: int = 0, n_atoms: int = 5, pbc=(True, True, True)):
    rng = np.random.default_rng(seed)
    cell = np.array([[4.1, 0.0, 0.0], [1.3, 3.9, 0.0], [0.7, -0.4, 4.4]])  # triclinic
    frac = rng.random((n_atoms, 3))
    numbers = np.array([14, 6] * n_atoms)[:n_atoms]
    return numbers, frac @ cell, cell, np.array(pbc, dtype=bool)


def random_frame(
    seed: int = 0,
    n_atoms: int = 5,
    operators=("H", "S", "D"),
    pbc=(True, True, True),
    cutoffs=None,
    drop_pairs: int = 0,
) -> Frame:
    """A frame whose pairs are all onsite blocks plus every edge within ``cutoffs``.

    ``drop_pairs`` removes that many random non-onsite pairs (both directions) so that
    graphs meet edges the frame lacks."""
    numbers, positions, cell, pbc = random_structure(seed, n_atoms, pbc)
    rng = np.random.default_rng(seed + 1000)
    symbols = ["Si" if z == 14 else "C" for z in numbers]
    nl = neighbor_list(positions, cell, pbc, symbols, cutoffs or CUTOFFS)
    norb = [n_orbitals(BASIS[s]) for s in symbols]
    keys = [(a, a, 0, 0, 0) for a in range(n_atoms)]
    keys += [(int(i), int(j), *map(int, r)) for i, j, r in zip(nl.i, nl.j, nl.shifts, strict=True)]
    hops = [k for k in keys if k[0] != k[1] or any(k[2:])]
    dropped = set()
    for k in rng.permutation(len(hops))[:drop_pairs] if hops else []:
        i, j, *r = hops[k]
        dropped |= {hops[k], (j, i, -r[0], -r[1], -r[2])}
    blocks = {}
    for op in operators:
        table = {}
        for key in keys:
            if key in dropped or key in table:
                continue
            i, j, *r = key
            block = rng.normal(size=(norb[i], norb[j]))
            if key[:2] == (i, i) and not any(r):
                block = block + block.T
            table[key] = block
            table[(j, i, -r[0], -r[1], -r[2])] = block.T if key != (j, i, -r[0], -r[1], -r[2]) else block
        blocks[op] = table
    return frame_from_blocks(numbers, positions, cell, pbc, BASIS, blocks, {"seed": seed})


def assert_frames_equal(a: Frame, b: Frame) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.basis == b.basis
    np.testing.assert_array_equal(a.pairs, b.pairs)
    np.testing.assert_array_equal(a.cell_shifts, b.cell_shifts)
    assert set(a.operators) == set(b.operators)
    for op in a.operators:
        np.testing.assert_array_equal(a.operators[op], b.operators[op])


def test_random_frame_is_hermitian_and_complete():
    frame = random_frame(3, n_atoms=4)
    blocks = frame.blocks("H")
    assert len(blocks) > 4 * 10  # a 4-atom cell with 4-5 Angstrom cutoffs has many images
    for (i, j, *r), block in blocks.items():
        np.testing.assert_array_equal(block, blocks[(j, i, -r[0], -r[1], -r[2])].T)
    assert frame.orbitals_per_atom.tolist() == [13, 16, 13, 16]
