"""An (n1, n2, n3) supercell of a frame, with its blocks tiled: the exact operators of the repeated crystal.

Every block (i, j, R) of the primitive frame is copied into each of the n1 n2 n3 cells t of the supercell,
as the block (i + a t, j + a wrap(t + R), floor((t + R) / n)), with a the atom count of the primitive frame
and atoms numbered cell by cell. The supercell's bands at Gamma are then the primitive bands at the k-points
m / n (zone folding), which makes it an exact test case for large-cell solvers, and tiling a projected frame
gives a realistic H of any size without a DFT run of that size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .frame import Frame


def supercell_frame(
    frame: Frame, reps: Sequence[int], operators: Sequence[str] | None = None, metadata: dict | None = None
) -> Frame:
    """The (n1, n2, n3) supercell of ``frame``, every block tiled (vectorised: 32,768 atoms in seconds).

    ``operators``: which to keep (default all). The packed arrays are the primitive's repeated once per
    cell, so memory is the supercell's blocks and a few integer arrays of its pair count."""
    n = np.asarray(reps, dtype=np.int64).reshape(3)
    if np.any(n < 1):
        raise ValueError(f"repetitions must be positive integers, got {list(reps)}")
    if np.any((n > 1) & ~frame.pbc):
        raise ValueError(
            f"cannot repeat along a non-periodic direction (pbc {frame.pbc.tolist()}, reps {n.tolist()})"
        )
    names = list(frame.operators) if operators is None else list(operators)
    missing = sorted(set(names) - set(frame.operators))
    if missing:
        raise ValueError(f"frame has no operator(s) {missing}; it holds {sorted(frame.operators)}")
    n_atoms, n_cells = frame.n_atoms, int(np.prod(n))
    # cell index c = (t0 * n1 + t1) * n2 + t2, atoms of cell c are c * n_atoms + (0 .. n_atoms - 1)
    t = np.stack(np.meshgrid(*(np.arange(x) for x in n), indexing="ij"), axis=-1).reshape(-1, 3)
    strides = np.array([n[1] * n[2], n[2], 1])
    target = t[:, None, :] + frame.cell_shifts[None, :, :]  # (cells, pairs, 3)
    shifts = np.floor_divide(target, n)
    home = (target - shifts * n) @ strides
    pairs = np.empty((n_cells, len(frame.pairs), 2), dtype=np.int64)
    pairs[..., 0] = (t @ strides)[:, None] * n_atoms + frame.pairs[None, :, 0]
    pairs[..., 1] = home * n_atoms + frame.pairs[None, :, 1]
    del target, home
    positions = (t @ frame.cell)[:, None, :] + frame.positions[None, :, :]
    info = {
        "supercell_of": {"reps": n.tolist(), "n_atoms": n_atoms, "formula_units": n_cells},
        **{k: v for k, v in frame.metadata.items() if k in ("basis_label", "basis_shells", "units")},
    }
    if "n_electrons" in frame.metadata:
        info["n_electrons"] = float(frame.metadata["n_electrons"]) * n_cells
    return Frame(
        numbers=np.tile(frame.numbers, n_cells),
        positions=positions.reshape(-1, 3),
        cell=n[:, None] * frame.cell,
        pbc=frame.pbc,
        basis=frame.basis,
        pairs=pairs.reshape(-1, 2),
        cell_shifts=shifts.reshape(-1, 3),
        operators={name: np.tile(frame.operators[name], n_cells) for name in names},
        metadata={**info, **(metadata or {})},
    )
