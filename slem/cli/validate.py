"""``slem validate PREDICTIONS REFERENCE``: errors of predicted frames against held-out reference frames.

Block errors (H, S, D by element pair, onsite and hopping), band errors against the LCAO reference and,
given pw.x eigenvalues at the validation k-points, against pw.x; per transfer split when splits are given;
the verdict against the settings' thresholds; parity and band plots. The same report as
``SlemValidationWorkChain`` stores, which runs this command as a CalcJob (``calcjobs/validate.py``).

Exit status 0 when the report is written, whatever the verdict (the verdict is in the report); 2 when the
input cannot be compared, with one line that names the problem.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from slem.evaluate.settings import Settings


def read_json(path: str | None, what: str) -> dict:
    """A JSON object from ``path`` ({} without one); ValueError names the file and what it should hold."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); it should hold {what}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a {type(data).__name__}; it should hold {what}")
    return data


def frame_labels(frames) -> list[str]:
    return [str(frame.metadata.get("label", i)) for i, frame in enumerate(frames)]


def electron_counts(reference, labels: list[str], given: dict) -> list[float]:
    """Per frame: the given count, else the frame's own (metadata, or Tr(DS) of its D)."""
    from slem.spectrum.analysis import SpectrumError, electron_count

    counts = []
    for label, frame in zip(labels, reference, strict=True):
        if label in given:
            counts.append(float(given[label]))
            continue
        try:
            counts.append(electron_count(frame)[0])
        except SpectrumError as exc:
            raise ValueError(f"frame {label}: {exc} (--electrons FILE: {{label: count}})") from exc
    return counts


def pw_eigenvalues(data: dict, labels: list[str]) -> dict:
    """{label: (fractional k-points, eigenvalues eV)} from {label: {"kpoints": .., "bands": ..}}."""
    import numpy as np

    unknown = sorted(set(data) - set(labels))
    if unknown:
        raise ValueError(f"pw.x bands for frames {unknown}, which the reference does not hold ({labels})")
    out = {}
    for label, entry in data.items():
        if not isinstance(entry, dict) or not {"kpoints", "bands"} <= set(entry):
            raise ValueError(f"pw.x bands of frame {label} need 'kpoints' (fractional) and 'bands' (eV)")
        out[label] = (np.asarray(entry["kpoints"], float), np.asarray(entry["bands"], float))
    return out


def _plain(value):
    """json.dumps fallback for numpy scalars and arrays in the report."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def run_validation(
    predictions: str,
    reference: str,
    output: Path,
    plots: Path,
    settings: dict,
    electrons: dict,
    splits: dict,
    pw_bands: dict,
) -> dict:
    from slem.atomic import atomic_open
    from slem.data.frame import read_frames
    from slem.evaluate.compare import compare
    from slem.spectrum.analysis import peak_rss_mb

    start = time.perf_counter()
    settings = Settings.from_dict(settings)
    reference_frames, predicted_frames = read_frames(reference), read_frames(predictions)
    if len(reference_frames) != len(predicted_frames):
        raise ValueError(
            f"{predictions} holds {len(predicted_frames)} frame(s) and {reference} {len(reference_frames)}; "
            "predict exactly the reference frames (slem predict MODEL REFERENCE)"
        )
    labels = frame_labels(reference_frames)
    if len(set(labels)) != len(labels):
        raise ValueError(f"the reference frames' labels repeat ({labels}); each frame needs its own label")
    plots.mkdir(parents=True, exist_ok=True)
    report, plot_files = compare(
        predicted_frames,
        reference_frames,
        labels,
        electron_counts(reference_frames, labels, electrons),
        settings,
        plots,
        pw_eigenvalues(pw_bands, labels),
        splits or None,
    )
    report["plots"] = {name: path.name for name, path in sorted(plot_files.items())}
    n_orbitals = [int(frame.orbitals_per_atom.sum()) for frame in reference_frames]
    report["resources"] = {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": peak_rss_mb(),
        "max_orbitals_per_frame": max(n_orbitals),
    }
    with atomic_open(output, "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True, default=_plain)
    return report


@click.command("validate")
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False))
@click.argument("reference", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default="report.json", show_default=True, help="The report (JSON).")
@click.option("--plots", "plot_dir", default=".", show_default=True, help="Folder of the PNG plots.")
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON: kpath_npoints, n_random_k, seed, conduction_window_eV, overlap_tolerance, thresholds, "
    "and for metals fermi_window_eV, fermi_kspacing, fermi_smearing_eV, metal_thresholds.",
)
@click.option(
    "--electrons",
    "electrons_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON {frame label: electron count}; default: the frame's n_electrons, else Tr(DS) of its D.",
)
@click.option(
    "--splits",
    "splits_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON {frame label: in_distribution | held_out_structure | held_out_composition | larger_cells}.",
)
@click.option(
    "--pw-bands",
    "pw_file",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON {frame label: {kpoints: fractional, bands: eV}} from pw.x at the validation k-points.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="BLAS threads of the eigen-solves [default: OMP_NUM_THREADS, else the CPUs this process may use].",
)
def validate(
    predictions, reference, output, plot_dir, settings_file, electrons_file, splits_file, pw_file, threads
) -> None:
    """Compare PREDICTIONS (frames from 'slem predict') with the REFERENCE frames they predict."""
    from slem.data.frame import FrameFormatError
    from slem.threads import configure_threads

    configure_threads(threads, use_torch=False)
    try:
        report = run_validation(
            predictions,
            reference,
            Path(output),
            Path(plot_dir),
            read_json(settings_file, "the validation settings"),
            read_json(electrons_file, "{frame label: electron count}"),
            read_json(splits_file, "{frame label: split}"),
            read_json(pw_file, "{frame label: {kpoints, bands}}"),
        )
    except (ValueError, TypeError, FrameFormatError, OSError) as exc:
        click.echo(f"slem validate: {exc}", err=True)
        sys.exit(2)
    summary = report["summary"]
    for key in sorted(summary):
        if summary[key] is not None and ("mae" in key or "gap" in key):
            click.echo(f"{key:40s} {summary[key]:.4g}")
    verdict = report["verdict"]
    failed = [key for key, check in verdict["checks"].items() if not check["passed"]]
    click.echo("verdict: PASSED" if verdict["passed"] else f"verdict: FAILED ({', '.join(failed)})")
