"""Eigenvalue loss: band energies of predicted and reference blocks at a few k-points.

The Bloch phase uses the full bond vector, exp(i k.(tau_j + R.cell - tau_i)), instead of
exp(i k.R.cell). The two matrices differ by a diagonal unitary, so eigenvalues agree, and the
graph's edge vectors are all that is needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from slem.bands.window import fermi_band_window, occupied_bands
from slem.data.frame import Frame

from .loss import half_mae_rmse


def occupied_band_count(frame: Frame) -> int:
    """The bands of the scalar H the frame's electrons fill: its ``n_electrons`` metadata, else Tr(D S).

    Raises ValueError naming the fix when the frame has neither."""
    from slem.spectrum.analysis import SpectrumError, electron_count

    try:
        n_electrons, _ = electron_count(frame)
    except SpectrumError as exc:
        label = frame.metadata.get("label", "a frame")
        raise ValueError(f"{label}: {exc}; training.eigenvalue_fermi_bands counts the bands from it (set "
                         "training.eigenvalue_fermi_bands: 0 to take every band)") from exc
    # the loss diagonalises the scalar H alone (a spin-orbit frame's H_so parts are not in it): two per band
    return occupied_bands(n_electrons, one_per_band=False)


def _dense_index(
    norb: np.ndarray,
    atoms: np.ndarray,
    edges: np.ndarray,
    edge_index: np.ndarray,
    onsite_off: np.ndarray,
    hop_off: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Row/column of every packed element of one frame in its dense (n, n) matrix."""
    local = np.zeros(int(atoms.max()) + 1, dtype=np.int64)
    local[atoms] = np.concatenate([[0], np.cumsum(norb[atoms])[:-1]])
    on_pos, on_row, on_col = [], [], []
    for a in atoms:
        n = norb[a]
        r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        on_pos.append(onsite_off[a] + np.arange(n * n))
        on_row.append(local[a] + r.ravel())
        on_col.append(local[a] + c.ravel())
    hop_pos, hop_row, hop_col, hop_edge = [], [], [], []
    for e in edges:
        i, j = edge_index[:, e]
        ni, nj = norb[i], norb[j]
        r, c = np.meshgrid(np.arange(ni), np.arange(nj), indexing="ij")
        hop_pos.append(hop_off[e] + np.arange(ni * nj))
        hop_row.append(local[i] + r.ravel())
        hop_col.append(local[j] + c.ravel())
        hop_edge.append(np.full(ni * nj, e))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, dtype=np.int64)
    return tuple(map(cat, (on_pos, on_row, on_col, hop_pos, hop_row, hop_col, hop_edge)))


def _bloch(
    onsite: torch.Tensor, hopping: torch.Tensor, idx: tuple, phase: torch.Tensor, n: int
) -> torch.Tensor:
    on_pos, on_row, on_col, hop_pos, hop_row, hop_col, _ = idx
    m = torch.zeros((n, n), dtype=phase.dtype, device=phase.device)
    m = m.index_put((on_row, on_col), onsite[on_pos].to(phase.dtype), accumulate=True)
    m = m.index_put((hop_row, hop_col), hopping[hop_pos].to(phase.dtype) * phase, accumulate=True)
    return 0.5 * (m + m.conj().T)  # removes the tiny anti-Hermitian part of an imperfect prediction


def cholesky_eigvalsh(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of H c = e S c through the Cholesky factor of S, differentiable in H and S.

    The torch counterpart of :func:`slem.bands.generalized_eigvalsh` without an overlap tolerance;
    raises if S is not positive definite (then :func:`canonical_eigvalsh` is the one to use)."""
    chol = torch.linalg.cholesky(s)
    a = torch.linalg.solve_triangular(chol, h, upper=False)
    a = torch.linalg.solve_triangular(chol, a.conj().T, upper=False).conj().T
    return torch.linalg.eigvalsh(0.5 * (a + a.conj().T))


def canonical_eigvalsh(h: torch.Tensor, s: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Eigenvalues of h in the span of the S eigenvectors with eigenvalue > tolerance.

    Near-null S directions (DZP has S(k) eigenvalues ~1e-4) make Cholesky fail or amplify H errors
    ~1/s; dropping them, as the validation does, keeps the gradient on the physical bands. S carries no
    gradient here: it is the reference overlap."""
    w, u = torch.linalg.eigh(s.detach())
    keep = w > tolerance
    x = u[:, keep] / torch.sqrt(w[keep]).to(u.dtype)
    a = x.conj().T @ h @ x
    return torch.linalg.eigvalsh(0.5 * (a + a.conj().T))


def edge_vectors(graph: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """tau_j + R.cell - tau_i per edge from the graph."""
    if "edge_vectors" in graph:
        return graph["edge_vectors"]
    i, j = graph["edge_index"]
    return graph["pos"][j] - graph["pos"][i] + graph["edge_shift"]


def kpoints_for(cell: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Gamma plus n-1 fixed pseudo-random k-points, Cartesian 1/Angstrom (with 2*pi)."""
    frac = np.random.default_rng([seed, 7919]).random((max(n - 1, 0), 3)) - 0.5
    frac = np.vstack([np.zeros((1, 3)), frac])
    if abs(np.linalg.det(cell)) < 1e-8:
        return np.zeros((1, 3))  # no lattice: a molecule has one "k-point"
    return 2 * np.pi * frac @ np.linalg.inv(cell).T


def batch_eigenvalues(
    blocks: Mapping[str, torch.Tensor],
    graph: Mapping[str, torch.Tensor],
    n_kpoints: int,
    seed: int,
    overlap_tolerance: float = 0.0,
) -> list[torch.Tensor]:
    """Generalized eigenvalues (nk, n_orb) per frame of the batch from packed H and S blocks
    (``H_onsite``, ``H_hopping``, ``S_onsite``, ``S_hopping``), at ``kpoints_for`` k-points."""
    norb = graph["norb"].cpu().numpy().astype(np.int64)
    edge_index = graph["edge_index"].cpu().numpy()
    batch = graph["batch"].cpu().numpy()
    onsite_off = np.concatenate([[0], np.cumsum(norb * norb)])
    hop_off = np.concatenate([[0], np.cumsum(norb[edge_index[0]] * norb[edge_index[1]])])
    vec = edge_vectors(graph)
    cells = graph["cell"].reshape(-1, 3, 3).cpu().numpy()
    cdtype = torch.complex128 if vec.dtype == torch.float64 else torch.complex64
    out = []
    for f in range(int(batch.max()) + 1):
        atoms = np.flatnonzero(batch == f)
        edges = np.flatnonzero(batch[edge_index[0]] == f)
        idx = tuple(
            torch.as_tensor(a, device=vec.device)
            for a in _dense_index(norb, atoms, edges, edge_index, onsite_off, hop_off)
        )
        n = int(norb[atoms].sum())
        kpts = torch.as_tensor(kpoints_for(cells[f], n_kpoints, seed), dtype=vec.dtype, device=vec.device)
        energies = []
        for k in kpts:
            phase = torch.exp(1j * (vec[idx[6]] @ k).to(cdtype))
            s = _bloch(blocks["S_onsite"], blocks["S_hopping"], idx, phase, n)
            h = _bloch(blocks["H_onsite"], blocks["H_hopping"], idx, phase, n)
            if overlap_tolerance > 0:
                energies.append(canonical_eigvalsh(h, s, overlap_tolerance))
            else:
                energies.append(cholesky_eigvalsh(h, s))
        kept = min(len(e) for e in energies)  # canonical orthogonalisation may keep fewer at some k
        out.append(torch.stack([e[:kept] for e in energies]))
    return out


def reference_eigenvalues(
    graph: Mapping[str, torch.Tensor], n_kpoints: int, seed: int, overlap_tolerance: float = 0.0
) -> list[torch.Tensor]:
    """The reference bands :func:`eigenvalue_loss` compares with, per frame of the batch, without gradient.

    They depend on the frame, the k-point seed and the tolerance alone, so a trainer computes them once per
    training frame and passes them back as ``reference``."""
    with torch.no_grad():
        return batch_eigenvalues(_reference_blocks(graph), graph, n_kpoints, seed, overlap_tolerance)


def _reference_blocks(graph: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: graph[k] for k in ("H_onsite", "H_hopping", "S_onsite", "S_hopping")}


def check_fermi_window(
    energies: torch.Tensor, occupied: int, overlap_tolerance: float, fermi_bands: int, label: str
) -> None:
    """Raise ValueError, naming the frame and the fix, where a frame's reference bands ``energies``
    (nk, kept), as the loss sees them, keep no empty band above the ``occupied`` ones. Canonical
    orthogonalisation can drop that many, and the loss would then stop mid-run; the kept count depends on
    the reference S alone, so this check before training is exact."""
    try:
        fermi_band_window(occupied, energies.shape[1], fermi_bands)
    except ValueError as exc:
        raise ValueError(
            f"{label}: {exc} at the eigenvalue loss's k-points (training.eigenvalue_overlap_tolerance "
            f"{overlap_tolerance} drops the rest); lower that tolerance or set "
            "training.eigenvalue_fermi_bands: 0"
        ) from exc


def eigenvalue_loss(
    pred: Mapping[str, torch.Tensor],
    graph: Mapping[str, torch.Tensor],
    n_kpoints: int,
    seed: int,
    overlap_tolerance: float = 0.0,
    fermi_bands: int = 0,
    reference: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """½(MAE+RMSE) of generalized eigenvalues (eV) over frames and k-points of the batch.

    Uses the predicted S when S is predicted, else the reference S on both sides. With
    ``overlap_tolerance`` > 0 both sides use the reference S, canonically orthogonalised
    (``canonical_eigvalsh``), so only the predicted H is trained by this term. With ``fermi_bands`` > 0
    only that many highest occupied and lowest empty bands count, from the graph's ``n_occupied`` per frame
    (``occupied_band_count``). ``reference``, the batch's :func:`reference_eigenvalues` computed before,
    saves solving them again (without it they are solved here: the plain path)."""
    ref = _reference_blocks(graph)
    taken = ("H_onsite", "H_hopping") if overlap_tolerance > 0 else tuple(ref)
    model = {**ref, **{k: pred[k] for k in taken if k in pred}}
    e_ref = reference if reference is not None else reference_eigenvalues(graph, n_kpoints, seed,
                                                                         overlap_tolerance)
    e_pred = batch_eigenvalues(model, graph, n_kpoints, seed, overlap_tolerance)
    if fermi_bands > 0:
        windows = [fermi_band_window(int(occupied), e.shape[1], fermi_bands) for occupied, e
                   in zip(graph["n_occupied"].tolist(), e_ref, strict=True)]
        e_pred = [e[:, w] for e, w in zip(e_pred, windows, strict=True)]
        e_ref = [e[:, w] for e, w in zip(e_ref, windows, strict=True)]
    return torch.stack([half_mae_rmse(p, r) for p, r in zip(e_pred, e_ref, strict=True)]).mean()
