"""``slem committee MODEL MODEL... --frames FILE -o report.json``: the spread of a committee of models (one
config, different seeds) on candidate frames, and which frames to compute with DFT next.

Frames are slem frames HDF5 files (with reference H where known: the report then gives each frame's error of
the committee mean and the rank correlation of spread and error) or ase-readable structures (candidates
without reference). Exit 0 with the report; 2 with one line naming the problem, and no report written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from slem.evaluate.committee import RANKINGS  # numpy only: the CLI's choices


@click.command("committee")
@click.argument("models", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--frames", "frame_files", multiple=True, required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Candidate frames: slem frames HDF5 (with reference H where known) or ase-readable files.")
@click.option("-o", "--output", default="committee.json", show_default=True, help="The report (JSON).")
@click.option("--select", type=click.IntRange(min=0), default=0, show_default=True,
              help="List the SELECT frames of largest spread, by --rank-by (the next DFT frames).")
@click.option("--rank-by", type=click.Choice(RANKINGS), default="sigma_H_meV", show_default=True,
              help="The spread that orders the selection: the mean or largest H element spread, the band "
              "spread, or the spread of the bands around the Fermi level (needs D or n_electrons).")
@click.option("--kpoints", type=click.IntRange(min=1), default=4, show_default=True,
              help="k-points of the band spread: Gamma plus random ones (seeded).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--overlap-tolerance", type=click.FloatRange(0.0, 1.0, max_open=True), default=None,
              help="S(k) directions below this eigenvalue are dropped for the band spread [default: the "
              "validation protocol's, 0.01].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads [default: OMP_NUM_THREADS, else the CPUs this process may use].")
def committee(models, frame_files, output, select, rank_by, kpoints, seed, overlap_tolerance,
              threads) -> None:
    """Spread of the committee MODELS on the candidate frames, and its rank correlation with the error."""
    from slem.threads import configure_threads

    configure_threads(threads)  # before torch is imported
    from slem.atomic import atomic_open
    from slem.data.frame import Frame, FrameFormatError
    from slem.evaluate.committee import committee_report
    from slem.predict import Predictor, read_structures

    try:
        if len(models) < 2:
            raise ValueError(f"a committee needs at least 2 models, got {len(models)}")
        predictors = [Predictor(path) for path in models]
        candidates, labels = [], []
        for path in frame_files:
            items = read_structures(path)
            for m, item in enumerate(items):
                # a file of one structure is named by its stem (the AiiDA job writes one file per label)
                label = Path(path).stem if len(items) == 1 else f"{Path(path).name}:{m}"
                for predictor in predictors:
                    predictor.check(item, f"frame {label}")  # all refusals before the first prediction
                candidates.append(item)
                labels.append(str(item.metadata.get("label", label)) if isinstance(item, Frame) else label)
        members = [[predictor.predict(item) for predictor in predictors] for item in candidates]
        references = [item if isinstance(item, Frame) else None for item in candidates]
        tolerance = {} if overlap_tolerance is None else {"overlap_tolerance": overlap_tolerance}
        report = committee_report(members, references, labels, kpoints, select, seed, rank_by=rank_by,
                                  **tolerance)
    except (ValueError, FrameFormatError, FileNotFoundError) as exc:
        click.echo(f"slem committee: {exc}", err=True)
        sys.exit(2)
    report["models"] = [str(Path(path).resolve()) for path in models]
    with atomic_open(output, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)
    rho = report["spearman_sigma_H_vs_error"]
    click.echo(f"{len(labels)} frames, {len(models)} models; rank correlation of H spread and error: "
               f"{'-' if rho is None else f'{rho:.3f}'} over {report['frames_with_reference']} frames")
    if select:
        click.echo("most uncertain: " + ", ".join(report["most_uncertain"]))
