"""``slem bands MODEL STRUCTURE``: band structure of predicted H, S along a k-path, with a plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np


class OverlapNotPositiveError(ValueError):
    """S(k) has a non-positive eigenvalue, so H c = E S c has no physical solution there."""


def sparse_bands(frame, kpts: np.ndarray, nbands: int, sigma: float, hamiltonian: str = "H") -> np.ndarray:
    """``nbands`` eigenvalues nearest ``sigma`` (eV) at each reduced k-point, shift-invert Lanczos."""
    from scipy.sparse.linalg import eigsh

    from slem.bands.bloch import bloch_matrix_sparse

    out = np.empty((len(kpts), nbands))
    for a, k in enumerate(kpts):
        h = bloch_matrix_sparse(frame, hamiltonian, k).tocsc()
        s = bloch_matrix_sparse(frame, "S", k).tocsc()
        # smallest algebraic eigenvalue by plain Lanczos: shift-invert near 0 would miss a large negative one
        smallest = float(eigsh(s, k=1, which="SA", tol=1e-8, return_eigenvectors=False)[0])
        _check_overlap(smallest, k)
        out[a] = np.sort(eigsh(h, k=nbands, M=s, sigma=sigma, which="LM", return_eigenvectors=False).real)
    return out


def _check_overlap(smallest: float, k: np.ndarray) -> None:
    if smallest <= 1e-10:
        raise OverlapNotPositiveError(
            f"S(k) is not positive definite at k = {np.round(k, 4).tolist()} (reduced): smallest eigenvalue "
            f"{smallest:.3e}. The predicted overlap is unphysical; train S longer or on more data."
        )


def dense_bands(
    frame, kpts: np.ndarray, overlap_tolerance: float = 0.0, hamiltonian: str = "H"
) -> np.ndarray:
    """All eigenvalues at each reduced k-point (dense), after the overlap positivity check.

    ``overlap_tolerance`` > 0: canonical orthogonalisation instead of the check; S(k) directions with
    eigenvalues at or below it are dropped (a nearly linearly dependent basis such as DZP amplifies H
    errors along them by 1/eigenvalue), and every k-point keeps the smallest number of bands kept."""
    import scipy.linalg

    from slem.bands.bloch import generalized_eigvalsh, operator_pair

    h_all, s_all = operator_pair(frame, kpts, hamiltonian=hamiltonian)
    out = []
    for k, h, s in zip(kpts, h_all, s_all, strict=True):
        if overlap_tolerance > 0:
            out.append(generalized_eigvalsh(h, s, overlap_tolerance))
            continue
        _check_overlap(float(np.linalg.eigvalsh(s)[0]), k)
        out.append(scipy.linalg.eigh(h, s, eigvals_only=True))
    n = min(len(e) for e in out)
    return np.array([e[:n] for e in out])


def _hamiltonian(operators, spin: str | None) -> str:
    """The H to diagonalise: H, or H_<spin> of a spin-polarised model (which needs ``--spin``)."""
    from slem.data.operators import is_spin_polarised

    if is_spin_polarised(operators):
        if spin is None:
            raise ValueError("the model is spin-polarised (H_up, H_down); give --spin up or --spin down")
        return f"H_{spin}"
    if spin is not None:
        raise ValueError(f"--spin {spin} but the model is not spin-polarised (it predicts {list(operators)})")
    return "H"


def band_path(frame, path: str, npoints: int):
    """(reduced k-points, linear axis, special-point positions, labels) along ase's band path."""
    from slem.bands import kpath

    kp = kpath(frame, None if path == "auto" else path, npoints)
    return np.asarray(kp.kpts), np.asarray(kp.x), np.asarray(kp.special_x), list(kp.labels)


def _plot(png: Path, x, xs, labels, energies, reference, emin, emax) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=130)
    if reference is not None:
        ax.plot(x, reference, color="k", lw=1.6, alpha=0.6)
        ax.plot([], [], color="k", lw=1.6, alpha=0.6, label="reference")
    ax.plot(x, energies, color="tab:red", lw=0.9, ls="--")
    ax.plot([], [], color="tab:red", lw=0.9, ls="--", label="SLEM")
    for pos in xs:
        ax.axvline(pos, color="0.7", lw=0.5)
    ax.set_xticks(xs, labels)
    ax.set_xlim(x[0], x[-1])
    if emin is not None or emax is not None:
        ax.set_ylim(emin, emax)
    ax.set_ylabel("E (eV)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def _reference_frame(reference: str, structure: str, index: int):
    from slem.data.frame import read_frames

    if reference.isdigit():  # a frame index into STRUCTURE, which must then be a frames file
        return read_frames(structure, [int(reference)])[0]
    return read_frames(reference, [index])[0]


def _check_reference_basis(reference_basis: dict, model_basis: dict, reference: str) -> None:
    """Bands in two bases are not comparable (other band counts, other variational bounds)."""
    from slem.data.orbitals import parse_shells

    if any(
        el not in model_basis or parse_shells(shells) != parse_shells(model_basis[el])
        for el, shells in reference_basis.items()
    ):
        raise ValueError(
            f"the reference frame ({reference}) is in basis {reference_basis} but the model predicts basis "
            f"{model_basis}; give a reference projected onto the model's basis, or a model trained on the "
            "reference's"
        )


@click.command("bands")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("structure", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--index", default=0, show_default=True, help="Which structure of STRUCTURE (and of --reference)."
)
@click.option(
    "--path",
    "kpath",
    default="auto",
    show_default=True,
    help="'auto' (ase's path for the lattice) or special points, e.g. GXWLGK.",
)
@click.option("--npoints", default=100, show_default=True)
@click.option(
    "--reference",
    default=None,
    help="Frames file with reference H, S to overlay, or a frame index into STRUCTURE.",
)
@click.option("--solver", type=click.Choice(["dense", "sparse"]), default="dense", show_default=True)
@click.option("--nbands", type=int, default=16, show_default=True, help="Bands for --solver sparse.")
@click.option("--sigma", type=float, default=0.0, show_default=True, help="Shift (eV) for --solver sparse.")
@click.option(
    "--align",
    type=click.Choice(["auto", "mean", "none"]),
    default="auto",
    show_default=True,
    help="Shift the model's bands by their mean offset from --reference ('auto': only for models trained "
    "with onsite_shift, whose energy zero is arbitrary).",
)
@click.option(
    "--overlap-tolerance",
    type=float,
    default=0.0,
    show_default=True,
    help="Dense solver: drop S(k) directions with eigenvalues <= this (canonical orthogonalisation; "
    "1e-2 for DZP, as the validation does) instead of requiring S(k) positive definite.",
)
@click.option(
    "--spin",
    type=click.Choice(["up", "down"]),
    default=None,
    help="Spin-polarised models (H_up, H_down): the channel whose bands to draw.",
)
@click.option("--emin", type=float, default=None)
@click.option("--emax", type=float, default=None)
@click.option("--edge-chunk", type=int, default=8192, show_default=True,
              help="Edges per model slice (same result; bounded memory). 0: one slice.")
@click.option("--device", default="cpu", show_default=True)
@click.option("-o", "--output", default="bands.png", show_default=True, type=click.Path())
@click.option("--data", type=click.Path(), default=None, help="Also write the bands as .json or .npz.")
def bands(
    model,
    align,
    structure,
    index,
    kpath,
    npoints,
    reference,
    solver,
    nbands,
    sigma,
    overlap_tolerance,
    spin,
    emin,
    emax,
    edge_chunk,
    device,
    output,
    data,
) -> None:
    """Bands of the model's H and S for STRUCTURE along a k-path; PNG plot and optional data file."""
    from slem.predict import Predictor, read_structures

    try:
        if overlap_tolerance < 0:
            raise ValueError(f"--overlap-tolerance must be >= 0, got {overlap_tolerance}")
        if overlap_tolerance > 0 and solver == "sparse":
            raise ValueError("--overlap-tolerance works with --solver dense only (the sparse solver needs S "
                             "positive definite); drop one of the two")
        predictor = Predictor(model, device=device, edge_chunk=edge_chunk)
        hamiltonian = _hamiltonian(predictor.operators, spin)
        if not {hamiltonian, "S"} <= set(predictor.operators):
            raise ValueError(f"the model predicts {predictor.operators}; bands need both H and S")
        items = read_structures(structure)
        if not 0 <= index < len(items):
            raise ValueError(f"--index {index} but {structure} holds {len(items)} structure(s)")
        frame = predictor.predict(items[index])
        ref = _reference_frame(reference, structure, index) if reference else None
        if ref is not None:
            _check_reference_basis(ref.basis, predictor.basis, reference)
        kpts, x, xs, labels = band_path(frame, kpath, npoints)
        solve = (
            (lambda f: sparse_bands(f, kpts, nbands, sigma, hamiltonian))
            if solver == "sparse"
            else (lambda f: dense_bands(f, kpts, overlap_tolerance, hamiltonian))
        )
        energies = solve(frame)
        ref_energies = solve(ref) if ref is not None else None
    except (OverlapNotPositiveError, ValueError, FileNotFoundError, KeyError) as exc:
        click.echo(f"slem bands: {exc}", err=True)
        sys.exit(2)
    shift = 0.0
    record = {"kpoints_reduced": kpts, "x": x, "special_x": xs, "labels": labels, "energies_eV": energies}
    msg = f"wrote {output}"
    if ref_energies is not None:
        n = min(energies.shape[1], ref_energies.shape[1])
        diff = energies[:, :n] - ref_energies[:, :n]
        if align == "mean" or (align == "auto" and predictor.metadata.get("onsite_shift")):
            shift = float(diff.mean())
        record["reference_energies_eV"] = ref_energies
        record["alignment_shift_eV"] = shift
        record["band_mae_meV"] = float(1000 * np.abs(diff - shift).mean())
        record["band_mae_unaligned_meV"] = float(1000 * np.abs(diff).mean())
        msg += f"; band MAE vs reference {record['band_mae_meV']:.2f} meV"
        if shift:
            msg += f" after a {shift:+.3f} eV alignment"
    _plot(Path(output), x, xs, labels, energies - shift, ref_energies, emin, emax)
    if data:
        if str(data).endswith(".npz"):
            np.savez(data, **{k: np.asarray(v) for k, v in record.items()})
        else:
            plain = {
                k: v if isinstance(v, (float, list)) else np.asarray(v).tolist() for k, v in record.items()
            }
            Path(data).write_text(json.dumps(plain))
    click.echo(msg)
