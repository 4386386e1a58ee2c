"""Inversion parities of band states at time-reversal-invariant momenta, from a frame's H(k) and S(k).

A band inversion (Bi2Se3, Bi2Te3) shows as an exchange of the parities of the states at the gap, so the
parities, not the gap alone, say whether a model has the topology of pw.x's bands.

Inversion P f(r) = f(2c - r) about a centre c maps atom a onto the atom b at 2c - tau_a = tau_b + L_a.cell
(L_a integer) and an orbital of angular momentum l onto (-1)^l times the same orbital there. With this
project's Bloch sums chi_a(k) = sum_R e^{i k.R} phi_a(r - tau_a - R) (H(k) = sum_R H(R) e^{i k.R}),
P chi_a(k) = (-1)^l e^{i k.L_a} chi_b(-k), and at a TRIM -k differs from k by a reciprocal lattice vector,
under which these Bloch sums are unchanged. So P is the matrix P_ba = (-1)^l e^{i k.L_a} on the orbital
coefficients, acting as the identity on spin (inversion commutes with spin). A state's parity is
c^H S P c for S-normalised c; within a degenerate level (Kramers pairs, cubic triplets) the eigenvalues
of C^H S P C, which P's commuting with H makes block diagonal there.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from slem.data.frame import Frame
from slem.data.orbitals import parse_shells

from .bloch import BandsError, is_spinor, operator_pair


def _atom_map(frame: Frame, center: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(b, L) per atom a with 2c - tau_a = tau_b + L.cell, or None if ``center`` is no inversion centre."""
    inverse = np.linalg.inv(frame.cell)
    images = (2.0 * center - frame.positions) @ inverse  # fractional
    targets = frame.positions @ inverse
    atoms, shifts = [], []
    for a, image in enumerate(images):
        delta = image[None, :] - targets
        lattice = np.round(delta)
        # only periodic axes may absorb a lattice vector (a sheet's normal axis is not one)
        lattice[:, ~frame.pbc] = 0.0
        distance = np.linalg.norm((delta - lattice) @ frame.cell, axis=1)
        hits = np.flatnonzero((distance < tol) & (frame.numbers == frame.numbers[a]))
        if len(hits) != 1:
            return None
        atoms.append(int(hits[0]))
        shifts.append(lattice[hits[0]].astype(np.int64))
    return np.array(atoms), np.array(shifts)


def inversion_centre(frame: Frame, tol: float = 1e-3) -> np.ndarray:
    """A Cartesian inversion centre of the frame's crystal (Angstrom), or BandsError if it has none.

    Every centre lies midway between atom 0 and an atom of its species, up to half a lattice vector."""
    halves = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    halves[:, ~frame.pbc] = 0.0
    first = frame.positions[0]
    for b in np.flatnonzero(frame.numbers == frame.numbers[0]):
        for half in np.unique(halves, axis=0):
            center = 0.5 * (first + frame.positions[b] + half @ frame.cell)
            if _atom_map(frame, center, tol) is not None:
                return center
    raise BandsError(
        "the structure has no inversion centre (to within "
        f"{tol} Angstrom), so its states have no inversion parity; parities need a centrosymmetric cell"
    )


def inversion_matrix(frame: Frame, kpt, center: np.ndarray | None = None, tol: float = 1e-3) -> np.ndarray:
    """P(k) on the orbital coefficients at a TRIM ``kpt`` (fractional), (n, n); spinor frames use 1 (x) P."""
    k = np.ravel(np.asarray(kpt, dtype=np.float64))
    if k.shape != (3,) or not np.allclose(2.0 * k, np.round(2.0 * k), atol=1e-8):
        raise BandsError(
            f"parities are defined at time-reversal-invariant momenta (2k a reciprocal lattice vector, "
            f"fractional components 0 or 1/2), got k = {k.tolist()}"
        )
    center = inversion_centre(frame, tol) if center is None else np.asarray(center, dtype=np.float64)
    mapping = _atom_map(frame, center, tol)
    if mapping is None:
        raise BandsError(f"{np.round(center, 4).tolist()} is not an inversion centre of the structure")
    targets, shifts = mapping
    signs = {el: np.repeat([(-1) ** l for l in parse_shells(b)], [2 * l + 1 for l in parse_shells(b)])
             for el, b in frame.basis.items()}  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(frame.orbitals_per_atom)])
    n = int(offsets[-1])
    p = np.zeros((n, n), dtype=np.complex128)
    for a, (b, shift) in enumerate(zip(targets, shifts, strict=True)):
        sign = signs[frame.symbols[a]]
        rows = np.arange(offsets[b], offsets[b + 1])
        cols = np.arange(offsets[a], offsets[a + 1])
        p[rows, cols] = sign * np.exp(2j * np.pi * (k @ shift))
    return p


def inversion_parities(
    frame: Frame,
    kpt,
    n_bands: int | None = None,
    center: np.ndarray | None = None,
    hamiltonian: str = "H",
    degeneracy_ev: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """(energies (eV), parities) of the lowest ``n_bands`` states at the TRIM ``kpt``, lowest first.

    Parities are real numbers near +1 or -1; how far they are from it measures how well the frame's H
    commutes with inversion. A degenerate level cut by ``n_bands`` is completed first."""
    p = inversion_matrix(frame, kpt, center)
    h, s = operator_pair(frame, np.ravel(kpt)[None, :], hamiltonian=hamiltonian)
    h = 0.5 * (h[0] + h[0].conj().T)
    s = np.eye(len(h)) if s is None else 0.5 * (s[0] + s[0].conj().T)
    if is_spinor(frame, hamiltonian):
        p = np.kron(np.eye(2), p)  # spin-major, as the spinor H(k)
    energies, vectors = scipy.linalg.eigh(h, s)
    n = len(energies) if n_bands is None else min(int(n_bands), len(energies))
    while n < len(energies) and energies[n] - energies[n - 1] < degeneracy_ev:
        n += 1
    parities = np.empty(n)
    start = 0
    while start < n:
        stop = start + 1
        while stop < n and energies[stop] - energies[stop - 1] < degeneracy_ev:
            stop += 1
        block = vectors[:, start:stop]
        overlap = block.conj().T @ s @ p @ block  # unitary and block diagonal for an exact symmetry
        parities[start:stop] = np.sort(np.linalg.eigvals(overlap).real)[::-1]
        start = stop
    return energies[:n], parities


def trim_points(frame: Frame) -> np.ndarray:
    """The time-reversal-invariant momenta (fractional; 8 in 3D, 4 in a sheet), Gamma first."""
    axes = [(0.0, 0.5) if periodic else (0.0,) for periodic in frame.pbc]
    return np.array([[a, b, c] for a in axes[0] for b in axes[1] for c in axes[2]])


def z2_index(frame: Frame, n_occupied: int, center: np.ndarray | None = None) -> dict:
    """Fu and Kane's strong Z2 index of a spinor frame with inversion (PRB 76, 045302 (2007)).

    delta_i = prod over the occupied Kramers pairs of their parity at TRIM i, and (-1)^nu0 = prod_i delta_i.
    ``n_occupied`` counts spinor states (the electrons of an insulator). nu0 = 1 is a strong topological
    insulator, such as Bi2Se3, whose band inversion at Gamma flips delta_Gamma alone. The weak indices are
    not computed. The product is independent of the inversion centre, since moving it multiplies the 2n
    parities at each TRIM by the same sign."""
    if not is_spinor(frame):
        raise BandsError(
            "the Z2 index needs a spin-orbit frame (H with its H_so_ parts): without spin-orbit coupling "
            "every level is spin-degenerate and the index is trivially 0"
        )
    if n_occupied % 2:
        raise BandsError(f"n_occupied must be even (Kramers pairs), got {n_occupied}")
    center = inversion_centre(frame) if center is None else center
    deltas = {}
    for k in trim_points(frame):
        energies, parities = inversion_parities(frame, k, n_bands=n_occupied, center=center)
        if len(energies) > n_occupied:
            raise BandsError(
                f"at k = {k.tolist()} one level holds states {n_occupied} and {n_occupied + 1}: the occupied "
                "states are not separated from the empty ones there, so they have no Z2 index"
            )
        deltas[tuple(float(x) for x in k)] = int(np.prod(np.sign(parities[0:n_occupied:2])))
    return {"delta": deltas, "nu0": int(np.prod(list(deltas.values())) < 0)}
