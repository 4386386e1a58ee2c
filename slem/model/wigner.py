"""Batched real Wigner-D matrices for bond frames, exact to working precision.

e3nn's ``wigner_D`` calls ``matrix_exp`` per edge, which is slow and not exact. We use the
factorisation D(alpha, beta) = Y(alpha) K Y(beta) K^T, where Y(t) is the rotation about e3nn's
pole axis (closed form with cos/sin of m*t) and K is the fixed D-matrix of the rotation taking
the y axis to the x axis (computed once in float64). Angles come from atan2 of well-conditioned
arguments, so bonds parallel to the pole (physical z) are handled without loss of precision.

Coordinates: the model works in e3nn's internal frame v' = (y, z, x) of the physical vector,
so that e3nn's real spherical harmonics equal the physical ones in the order m = -l..l with
p = (y, z, x). The bond frame rotates the bond onto e3nn's pole (internal y = physical z).
"""

from __future__ import annotations

import math
from functools import cache

import torch
from e3nn import o3

_PERM = [1, 2, 0]  # physical (x, y, z) -> internal (y, z, x)


def to_internal(vec: torch.Tensor) -> torch.Tensor:
    return vec[..., _PERM]


@cache
def _k_matrix64(l: int) -> torch.Tensor:
    # so3_generators builds in the default dtype; float32 there would cap the whole model at 1e-7.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        gen = o3.so3_generators(l)
    finally:
        torch.set_default_dtype(previous)
    return torch.matrix_exp(-0.5 * math.pi * gen[2].to(torch.float64))


_K_CACHE: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def k_matrix(l: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (l, dtype, device)
    if key not in _K_CACHE:
        _K_CACHE[key] = _k_matrix64(l).to(dtype=dtype, device=device)
    return _K_CACHE[key]


def pole_rotation(angle: torch.Tensor, l: int) -> torch.Tensor:
    """D^l of the rotation by ``angle`` about e3nn's pole (internal y); shape (..., 2l+1, 2l+1)."""
    freq = torch.arange(l, -l - 1, -1, dtype=angle.dtype, device=angle.device)
    arg = angle[..., None] * freq
    out = angle.new_zeros(angle.shape + (2 * l + 1, 2 * l + 1))
    idx = torch.arange(2 * l + 1, device=angle.device)
    # sin first: for m = 0 the anti-diagonal and diagonal coincide and the cos must win.
    out[..., idx, 2 * l - idx] = torch.sin(arg)
    out[..., idx, idx] = torch.cos(arg)
    return out


def bond_angles(vec_internal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, beta) with R(alpha, beta) y = vec/|vec| (e3nn's angle convention, internal coordinates)."""
    x, y, z = vec_internal.unbind(-1)
    alpha = torch.atan2(x, z)
    beta = torch.atan2(torch.sqrt(x * x + z * z), y)
    return alpha, beta


def wigner_from_angles(alpha: torch.Tensor, beta: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    """[D^0, ..., D^lmax] of R(alpha, beta, 0), each (..., 2l+1, 2l+1)."""
    out = [torch.ones(alpha.shape + (1, 1), dtype=alpha.dtype, device=alpha.device)]
    for l in range(1, lmax + 1):
        k = k_matrix(l, alpha.dtype, alpha.device)
        out.append(pole_rotation(alpha, l) @ k @ pole_rotation(beta, l) @ k.T)
    return out


def bond_wigner(vec_internal: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    """Wigner-D of the rotation taking the pole onto each bond; rotate into the bond frame with D^T."""
    alpha, beta = bond_angles(vec_internal)
    return wigner_from_angles(alpha, beta, lmax)


def wigner_from_matrix(rot: torch.Tensor, l: int, parity: int = 1, inversion: bool = False) -> torch.Tensor:
    """Real Wigner-D (physical m = -l..l order) of a physical 3x3 rotation, times parity if inverted.

    ``rot`` must be a proper rotation; pass ``inversion=True`` for the improper ``-rot``."""
    perm = torch.tensor(_PERM)
    rot_internal = rot[perm][:, perm]
    alpha, beta = bond_angles(rot_internal[:, 1])
    rest = wigner_from_angles(alpha, beta, 1)[1].T @ rot_internal  # a rotation about the pole
    gamma = torch.atan2(rest[0, 2], rest[0, 0])
    d = wigner_from_angles(alpha, beta, l)[l] @ pole_rotation(gamma, l)
    return d * (parity if inversion else 1)


def orbital_wigner(rot: torch.Tensor, shells: list[int], inversion: bool = False) -> torch.Tensor:
    """Block-diagonal D over an atom's orbitals (shell order as stored), including (-1)^l under inversion."""
    blocks = [wigner_from_matrix(rot, l, (-1) ** l, inversion) for l in shells]
    return torch.block_diag(*blocks)
