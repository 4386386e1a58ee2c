"""H(k) = sum_R H(R) exp(i k.R) from a Frame's blocks, and band energies from (H(k), S(k)).

k-points are fractional (reduced) coordinates of the reciprocal cell unless ``cartesian`` is
set, in which case they are Cartesian in Angstrom^-1 including the 2 pi (k.r is a phase).
A frame may hold each bond once (i, j, R) without its partner (j, i, -R), as DeePTB files do:
the missing transposed block is then added (with a minus sign for the antisymmetric spin-orbit parts
H_so_a), so half and full pair lists give the same H(k). A spin-orbit frame's H(k) is the spinor
H(k) (x) 1 + i sum_a H_so_a(k) (x) sigma_a, with S(k) (x) 1 (``operator_pair``, slem.spinor).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from slem.data.frame import Frame
from slem.data.operators import partner_sign


class BandsError(ValueError):
    """The frame cannot be Bloch-summed (missing operator, unusable overlap)."""


def to_fractional(frame: Frame, kpts: np.ndarray, cartesian: bool = False) -> np.ndarray:
    k = np.atleast_2d(np.asarray(kpts, dtype=np.float64))
    if k.shape[-1] != 3:
        raise BandsError(f"k-points must have 3 components, got shape {k.shape}")
    return k @ frame.cell.T / (2 * np.pi) if cartesian else k


def _terms(frame: Frame, operator: str):
    """(row offset, col offset, block, R) for every block and every missing transposed partner."""
    if operator not in frame.operators:
        raise BandsError(f"frame has no operator {operator!r}; it holds {sorted(frame.operators)}")
    offsets = np.concatenate([[0], np.cumsum(frame.orbitals_per_atom)])
    lookup = frame.pair_lookup()
    sign = partner_sign(operator)
    for p, ((i, j), r) in enumerate(zip(frame.pairs, frame.cell_shifts, strict=True)):
        block = frame.block(operator, p)
        yield offsets[i], offsets[j], block, r
        if (int(j), int(i), *(-int(x) for x in r)) not in lookup:
            yield offsets[j], offsets[i], sign * block.T, -r


def bloch_matrices(frame: Frame, operator: str, kpts: np.ndarray, cartesian: bool = False) -> np.ndarray:
    """Dense X(k), shape (nk, n_orb, n_orb), complex."""
    k_frac = to_fractional(frame, kpts, cartesian)
    n = int(frame.orbitals_per_atom.sum())
    out = np.zeros((len(k_frac), n, n), dtype=np.complex128)
    for row, col, block, r in _terms(frame, operator):
        phase = np.exp(2j * np.pi * (k_frac @ r))
        out[:, row : row + block.shape[0], col : col + block.shape[1]] += phase[:, None, None] * block
    return out


def is_spinor(frame: Frame, hamiltonian: str = "H") -> bool:
    """Whether ``hamiltonian`` of ``frame`` is diagonalised as a spinor (a spin-orbit frame's H)."""
    from slem.data.operators import has_spin_orbit

    return hamiltonian == "H" and has_spin_orbit(frame.operators)


def bloch_hamiltonian(frame: Frame, kpts: np.ndarray, cartesian: bool = False, hamiltonian: str = "H"):
    """H(k) (nk, n, n) of ``hamiltonian``; a spin-orbit frame's spinor H(k) (nk, 2n, 2n), spin-major."""
    from slem.data.operators import spin_orbit_names
    from slem.spinor import spinor_matrix

    h = bloch_matrices(frame, hamiltonian, kpts, cartesian)
    if not is_spinor(frame, hamiltonian):
        return h
    parts = np.stack([bloch_matrices(frame, name, kpts, cartesian) for name in spin_orbit_names("H")])
    return spinor_matrix(h, parts)


def operator_pair(
    frame: Frame, kpts: np.ndarray, cartesian: bool = False, hamiltonian: str = "H"
) -> tuple[np.ndarray, np.ndarray | None]:
    """(H(k), S(k)) to diagonalise, S None without an S in the frame: plain, or the spinor pair of a
    spin-orbit frame (2n x 2n, spin-major) when ``hamiltonian`` is its H."""
    from slem.spinor import spin_diagonal

    h = bloch_hamiltonian(frame, kpts, cartesian, hamiltonian)
    if "S" not in frame.operators:
        return h, None
    s = bloch_matrices(frame, "S", kpts, cartesian)
    return h, spin_diagonal(s) if is_spinor(frame, hamiltonian) else s


def bloch_matrix_sparse(frame: Frame, operator: str, kpt: np.ndarray, cartesian: bool = False):
    """X(k) at one k as a scipy.sparse CSR matrix, for cells too large for dense storage.

    Vectorised over the packed blocks (``slem.spectrum.sparse.BlochPattern``): real at k-points whose
    phases are all real (Gamma, 2k integer), complex elsewhere; not symmetrised, like ``bloch_matrices``.
    A spin-orbit frame's H and S are its spinor ones (spin-major, as ``operator_pair``)."""
    from slem.spectrum.sparse import BlochPattern  # slem.spectrum imports this module

    return BlochPattern(frame).solved_matrix(operator, np.ravel(kpt), cartesian, hermitian=False)


def generalized_eigvalsh(
    h: np.ndarray, s: np.ndarray, overlap_tolerance: float = 0.0, n_bands: int | None = None
) -> np.ndarray:
    """Eigenvalues of H c = e S c (both Hermitian), lowest first.

    With ``overlap_tolerance`` > 0 the problem is solved by canonical orthogonalisation: the
    eigenvectors of S with eigenvalues at or below the tolerance are dropped, so fewer than n
    eigenvalues come back. A multi-zeta basis in a dense crystal is nearly linearly dependent
    (Si8 DZP: smallest S(k) eigenvalue 1.6e-4, a dozen below 1e-3), and an error dH of H along such a
    direction v moves an eigenvalue by about <v|dH|v>/lambda_v: 5 meV of random H noise then gives
    tens of eV of spurious bands. Dropping those directions bounds the amplification by 1/tolerance.
    Raises ``numpy.linalg.LinAlgError`` if S is not positive definite and no tolerance is given."""
    h = 0.5 * (h + h.conj().T)
    s = 0.5 * (s + s.conj().T)
    n = h.shape[0] if n_bands is None else min(int(n_bands), h.shape[0])
    if overlap_tolerance <= 0.0:
        return scipy.linalg.eigh(h, s, eigvals_only=True, subset_by_index=(0, n - 1))
    lam, u = np.linalg.eigh(s)
    keep = lam > overlap_tolerance
    if not keep.any():
        raise np.linalg.LinAlgError(
            f"no eigenvalue of S exceeds the overlap tolerance {overlap_tolerance:g} (largest {lam[-1]:.3g})"
        )
    x = u[:, keep] / np.sqrt(lam[keep])
    return np.linalg.eigvalsh(x.conj().T @ h @ x)[: min(n, int(keep.sum()))]


def band_energies(
    frame: Frame,
    kpts: np.ndarray,
    cartesian: bool = False,
    n_bands: int | None = None,
    hamiltonian: str = "H",
    overlap_tolerance: float = 0.0,
) -> np.ndarray:
    """Eigenvalues (nk, n_bands) in eV of H(k) c = e S(k) c (S = identity if the frame has no S).

    ``overlap_tolerance`` > 0: canonical orthogonalisation (see ``generalized_eigvalsh``); the band
    count is then the smallest number of kept S(k) directions over the k-points (at most n_bands)."""
    if overlap_tolerance < 0:
        raise BandsError(f"overlap_tolerance must be >= 0, got {overlap_tolerance}")
    h, s = operator_pair(frame, kpts, cartesian, hamiltonian)
    n = h.shape[1] if n_bands is None else min(int(n_bands), h.shape[1])
    rows = []
    for index in range(len(h)):
        if s is None:
            rows.append(np.linalg.eigvalsh(0.5 * (h[index] + h[index].conj().T))[:n])
            continue
        try:
            rows.append(generalized_eigvalsh(h[index], s[index], overlap_tolerance, n))
        except np.linalg.LinAlgError as exc:
            raise BandsError(
                f"S(k) is not positive definite at k-point {index}; the overlap blocks are incomplete or "
                "wrong (or nearly linearly dependent: pass overlap_tolerance, e.g. 1e-2)"
            ) from exc
    n = min(len(r) for r in rows)
    return np.array([r[:n] for r in rows])
