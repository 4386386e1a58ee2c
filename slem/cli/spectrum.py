"""``slem spectrum FRAMES`` or ``slem spectrum MODEL STRUCTURE``: band edges and DOS of a large cell.

No dense diagonalisation: sparse H(k), S(k), the kernel polynomial method for the DOS and sparse
shift-invert Lanczos (with the inertia of the factorization) for the HOMO and LUMO. Writes a JSON or HDF5
result and a DOS plot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

ARRAYS = ("energies_eV", "dos_states_per_eV", "integrated_dos", "edge_eigenvalues_eV")
# a spin-polarised frame's DOS per channel (states/eV per cell, one electron each)
CHANNEL_ARRAYS = ("dos_up_states_per_eV", "dos_down_states_per_eV")


def _is_frames_file(path: str) -> bool:
    import h5py

    from slem.data.frame import FORMAT_NAME

    if not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as handle:
        return handle.attrs.get("format") == FORMAT_NAME


def load_frame(source: str, structure: str | None, index: int, device: str = "cpu"):
    """The frame: from a frames file (SOURCE), or predicted by the model SOURCE for STRUCTURE."""
    from slem.data.frame import read_file_info, read_frames

    if _is_frames_file(source):
        if structure is not None:
            raise ValueError(f"{source} is a frames file; give no STRUCTURE with it (or give a model first)")
        n_frames = read_file_info(source)["n_frames"]
        if not 0 <= index < n_frames:
            raise ValueError(f"--index {index} but {source} holds {n_frames} frame(s)")
        return read_frames(source, [index])[0]
    if structure is None:
        raise ValueError(f"{source} is not a slem frames file; give MODEL STRUCTURE, or a frames file alone")
    from slem.predict import Predictor, read_structures

    predictor = Predictor(source, device=device)
    items = read_structures(structure)
    if not 0 <= index < len(items):
        raise ValueError(f"--index {index} but {structure} holds {len(items)} structure(s)")
    return predictor.predict(items[index])


def write_result(path: Path, result: dict) -> None:
    """JSON (arrays as lists) or HDF5 (arrays as datasets, the rest as a JSON attribute ``summary``)."""
    from slem.atomic import atomic_h5, atomic_open

    arrays = [name for name in ARRAYS + CHANNEL_ARRAYS if name in result]
    summary = {k: v for k, v in result.items() if k not in arrays}
    if path.suffix in (".h5", ".hdf5"):
        with atomic_h5(path) as handle:
            for name in arrays:
                handle.create_dataset(name, data=np.asarray(result[name], dtype=np.float64))
            handle.attrs["summary"] = json.dumps(summary, sort_keys=True)
        return
    plain = {**summary, **{name: np.asarray(result[name], dtype=np.float64).tolist() for name in arrays}}
    with atomic_open(path) as handle:
        handle.write(json.dumps(plain, indent=1, sort_keys=True))


def plot_dos(path: Path, result: dict, emin: float | None = None, emax: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energies, dos = np.asarray(result["energies_eV"]), np.asarray(result["dos_states_per_eV"])
    # both spins: a scalar H's states hold two electrons, a spinor H's one
    per_atom = result.get("electrons_per_state", 2) * dos / max(result["n_atoms"], 1)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=130)
    moments = f"KPM ({result['kpm']['n_moments']} moments)"
    if all(name in result for name in CHANNEL_ARRAYS):
        # majority up, minority mirrored down: the exchange splitting reads off the plot
        for name, sign, color in zip(CHANNEL_ARRAYS, (1, -1), ("tab:blue", "tab:orange"), strict=True):
            channel = sign * np.asarray(result[name]) / max(result["n_atoms"], 1)
            ax.fill_between(energies, channel, color=color, alpha=0.35, lw=0)
            ax.plot(energies, channel, color=color, lw=0.9, label=f"{name.split('_')[1]}, {moments}")
        ax.axhline(0.0, color="k", lw=0.5)
    else:
        ax.fill_between(energies, per_atom, color="tab:blue", alpha=0.35, lw=0)
        ax.plot(energies, per_atom, color="tab:blue", lw=0.9, label=moments)
    edges = result.get("edges")
    if edges:
        for value in (edges["homo_eV"], edges["lumo_eV"]):
            ax.axvline(value, color="tab:red", lw=0.8, ls="--")
        ax.axvspan(
            edges["homo_eV"],
            edges["lumo_eV"],
            color="tab:red",
            alpha=0.08,
            label=f"gap {edges['gap_eV']:.3f} eV (shift-invert)",
        )
    else:
        ax.axvline(result["kpm"]["fermi_level_eV"], color="k", lw=0.8, ls=":", label="E_F (KPM)")
    ax.set_xlim(emin if emin is not None else energies[0], emax if emax is not None else energies[-1])
    spin = all(name in result for name in CHANNEL_ARRAYS)
    if not spin:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("E (eV)")
    ax.set_ylabel("DOS (states / eV / atom, " + ("per spin: up, down)" if spin else "both spins)"))
    states = "spinor states" if result.get("spinor") else "orbitals"
    ax.set_title(f"{result['n_atoms']} atoms, {result['n_orbitals']} {states}", fontsize=9)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@click.command("spectrum")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("structure", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--index", default=0, show_default=True, help="Which frame (or structure) of the file.")
@click.option(
    "--kpoint",
    nargs=3,
    type=float,
    default=(0.0, 0.0, 0.0),
    show_default=True,
    help="Reduced k-point; Gamma (real matrices) by default.",
)
@click.option(
    "--supercell",
    nargs=3,
    type=int,
    default=None,
    help="Tile the frame's blocks into an n1 n2 n3 supercell first (exact for a periodic H).",
)
@click.option(
    "--electrons",
    type=float,
    default=None,
    help="Electron count (default: the frame's n_electrons, else Tr(DS) of its D).",
)
@click.option(
    "--moments", default=256, show_default=True, help="KPM Chebyshev moments (resolution ~ pi w / M)."
)
@click.option("--vectors", default=8, show_default=True, help="KPM random vectors (stochastic trace).")
@click.option(
    "--edges/--no-edges",
    default=True,
    show_default=True,
    help="Shift-invert HOMO/LUMO (a sparse LU: its fill limits it to a few thousand atoms of Si SZ).",
)
@click.option(
    "--nearest",
    default=4,
    show_default=True,
    help="Eigenvalues per side of a shift (2x this nearest it first).",
)
@click.option(
    "--overlap-solver",
    type=click.Choice(["auto", "cg", "lu"]),
    default="auto",
    show_default=True,
    help="S^-1 in the KPM: conjugate gradients, sparse LU, or CG unless S is ill-conditioned.",
)
@click.option("--points", default=2001, show_default=True, help="Energies in the DOS arrays.")
@click.option(
    "--emin",
    type=float,
    default=None,
    help="Plot range (eV); with --emax also the DOS grid's (default: the spectrum, 1 eV margins).",
)
@click.option("--emax", type=float, default=None)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="For MODEL STRUCTURE: where to predict.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads [default: OMP_NUM_THREADS, else the CPUs this process may use] (docs/threading.md); "
    "SuperLU and the sparse products use one either way.",
)
@click.option(
    "-o",
    "--output",
    default="spectrum.json",
    show_default=True,
    type=click.Path(),
    help="Result file, .json or .h5.",
)
@click.option(
    "--plot", "plot", default="dos.png", show_default=True, type=click.Path(), help="DOS plot (PNG)."
)
def spectrum(
    source,
    structure,
    index,
    kpoint,
    supercell,
    electrons,
    moments,
    vectors,
    edges,
    nearest,
    overlap_solver,
    points,
    emin,
    emax,
    seed,
    device,
    threads,
    output,
    plot,
) -> None:
    """Band edges and density of states of one frame of SOURCE (a frames HDF5, e.g. from 'slem predict'),
    or of the model SOURCE's prediction for STRUCTURE, without dense diagonalisation."""
    from slem.threads import configure_threads

    # before torch (the MODEL STRUCTURE path) is imported: OpenMP reads its wait policy when it loads
    configure_threads(threads, use_torch=structure is not None)
    from slem.spectrum.analysis import SpectrumError, frame_spectrum
    from slem.spectrum.edges import EdgesError
    from slem.spectrum.kpm import KpmError
    from slem.spectrum.overlap import OverlapError

    def log(message: str) -> None:
        click.echo(message, err=True)

    try:
        if moments < 2 or vectors < 1 or nearest < 1 or points < 2:
            raise ValueError("--moments must be >= 2 and --vectors, --nearest >= 1, --points >= 2")
        frame = load_frame(source, structure, index, device)
        if supercell:
            from slem.data.supercell import supercell_frame

            frame = supercell_frame(frame, supercell)
        log(f"frame {index} of {structure or source}: {frame.n_atoms} atoms, {len(frame.pairs)} blocks")
        grid = None
        if emin is not None and emax is not None:
            if emax <= emin:
                raise ValueError(f"--emax {emax} must exceed --emin {emin}")
            grid = np.linspace(emin, emax, points)
        result = frame_spectrum(
            frame,
            kpoint,
            electrons,
            moments,
            vectors,
            edges,
            nearest,
            overlap_solver,
            grid,
            seed,
            log,
            points=points,
        )
    except (SpectrumError, EdgesError, KpmError, OverlapError, ValueError, FileNotFoundError) as exc:
        click.echo(f"slem spectrum: {exc}", err=True)
        sys.exit(2)
    result["source"] = (
        str(source) if structure is None else {"model": str(source), "structure": str(structure)}
    )
    result["index"] = index
    result["supercell"] = list(supercell) if supercell else None
    write_result(Path(output), result)
    plot_dos(Path(plot), result, emin, emax)
    edge = result.get("edges")
    summary = (
        f"gap {edge['gap_eV']:.4f} eV (HOMO {edge['homo_eV']:.4f}, LUMO {edge['lumo_eV']:.4f})"
        if edge
        else f"E_F ~ {result['kpm']['fermi_level_eV']:.3f} eV (KPM)"
    )
    click.echo(f"wrote {output} and {plot}: {summary}")
