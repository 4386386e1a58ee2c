"""The model and the projection use one orbital convention: p = (y, z, x), real Y_lm without Condon-Shortley.

Each half has its own equivariance tests; this pins them to the same physical harmonics, so a model trained
on projected blocks can represent them exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from slem.model.wigner import orbital_wigner


def _real_harmonics(vec: np.ndarray, l: int) -> np.ndarray:
    """Unnormalised real solid harmonics in the project order (m = -l..l), written out by hand."""
    x, y, z = vec
    if l == 1:
        return np.array([y, z, x])
    if l == 2:
        return np.array(
            [
                np.sqrt(3) * x * y,
                np.sqrt(3) * y * z,
                z * z - 0.5 * (x * x + y * y),
                np.sqrt(3) * x * z,
                np.sqrt(3) / 2 * (x * x - y * y),
            ]
        )
    raise ValueError(l)


def test_model_wigner_rotates_the_project_harmonics():
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(7)
    rotation = Rotation.random(random_state=11).as_matrix()
    d = orbital_wigner(torch.tensor(rotation), [1, 2]).numpy()  # block diagonal: p (3) then d (5)
    for _ in range(5):
        v = rng.normal(size=3)
        for l, block in ((1, d[:3, :3]), (2, d[3:, 3:])):
            np.testing.assert_allclose(
                _real_harmonics(rotation @ v, l), block @ _real_harmonics(v, l), atol=1e-12
            )
    torch.set_default_dtype(torch.float32)


def test_projection_wigner_matches_model_wigner():
    from test_projection_rotation import wigner_d  # the projection tests' own helper

    rotation = Rotation.random(random_state=3).as_matrix()
    for l in (1, 2, 3):
        ours = orbital_wigner(torch.tensor(rotation), [l]).numpy()
        np.testing.assert_allclose(ours, wigner_d(l, rotation), atol=1e-10)
