"""``slem predict MODEL STRUCTURE... -o pred.h5``: predicted H, S, D blocks as frames or DeePTB folders."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("structures", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Frames HDF5 file (--format slem) or folder (--format deeptb).",
)
@click.option("--format", "fmt", type=click.Choice(["slem", "deeptb"]), default="slem", show_default=True)
@click.option(
    "--edge-chunk", type=int, default=8192, show_default=True,
    help="Edges per model slice (same result; bounds memory and keeps big cells fast). 0: one slice."
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads [default: OMP_NUM_THREADS, else the CPUs this process may use] (docs/threading.md).",
)
def predict(
    model: str,
    structures: tuple[str, ...],
    output: str,
    fmt: str,
    edge_chunk: int | None,
    device: str,
    threads: int | None,
) -> None:
    """Predict operator blocks for every structure in STRUCTURES (ase-readable files or slem frames HDF5)."""
    from slem.threads import configure_threads

    configure_threads(threads)  # before torch is imported: OpenMP reads its wait policy when it loads
    from slem.atomic import check_new_folder
    from slem.data.frame import write_frames
    from slem.predict import Predictor, read_structures

    try:
        if fmt == "deeptb":
            check_new_folder(output)  # before the prediction, which may be long
        predictor = Predictor(model, device=device, edge_chunk=edge_chunk)
        items = []
        for path in structures:
            for m, item in enumerate(read_structures(path)):
                # every structure is checked before the first (possibly long) prediction and before
                # anything is written
                predictor.check(item, f"structure {m} of {path}")
                items.append(item)
        frames = []
        for k, item in enumerate(items):
            frames.append(predictor.predict(item))
            click.echo(
                f"predicted structure {k}: {frames[-1].n_atoms} atoms, {len(frames[-1].pairs)} blocks",
                err=True,
            )
    except (FileNotFoundError, ValueError) as exc:
        click.echo(f"slem predict: {exc}", err=True)
        sys.exit(2)
    if fmt == "slem":
        write_frames(output, frames, attrs={"predicted_by": str(Path(model).resolve())})
    else:
        from slem.data.deeptb import write_deeptb

        write_deeptb(frames, output)
    click.echo(str(output))
