"""The Kleinman-Bylander term assembled in real space from two-centre <phi|beta> blocks.

V_NL,ij(R) = sum_c sum_R' P_ic(R') D_c P_jc(R' - R)^T with
P_ic(R') = <phi_i(r - tau_i)|beta_c(r - tau_c - R')>, two-centre blocks of range r_i + r_beta;
the product reaches r_i + r_j + 2 r_beta.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def nonlocal_blocks(
    projections: dict[tuple[int, int, int, int, int], np.ndarray],
    dion: list[np.ndarray],
    wanted: set[tuple[int, int, int, int, int]] | None = None,
) -> dict[tuple[int, int, int, int, int], np.ndarray]:
    """Blocks (i, j, Rx, Ry, Rz) of V_NL from P blocks keyed (i, c, R'x, R'y, R'z)."""
    by_centre: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
    for (i, c, *shift), block in projections.items():
        by_centre[c].append((i, np.array(shift), block))
    out: dict[tuple[int, int, int, int, int], np.ndarray] = {}
    for c, entries in by_centre.items():
        d = dion[c]
        if d.size == 0:
            continue
        left = [block @ d for _, _, block in entries]
        for a, (i, shift_i, _) in enumerate(entries):
            for j, shift_j, block_j in entries:
                key = (i, j, *map(int, shift_i - shift_j))
                if wanted is not None and key not in wanted:
                    continue
                term = left[a] @ block_j.T
                if key in out:
                    out[key] += term
                else:
                    out[key] = term
    return out
