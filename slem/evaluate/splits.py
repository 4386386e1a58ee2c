"""The validation report per transfer split (in-distribution, held-out structure, held-out composition,
larger cells; workflows/splits.py names them): each split gets its own block errors, band summary and
parity plot, and the protocol verdict is taken on the in-distribution frames when there are any, since
the thresholds are the protocol's in-distribution targets; transfer errors are reported, not gated.
"""

from __future__ import annotations

import pathlib

from slem.data.frame import Frame

from .blocks import block_errors, parity_samples
from .plots import parity_plot
from .settings import SPLITS, unknown_splits
from .summary import summarise

GATED_SPLIT = "in_distribution"


def check_splits(labels: list[str], splits: dict[str, str]) -> None:
    missing = sorted(set(labels) - set(splits))
    if missing:
        raise ValueError(f"frames {missing} have no split; give every frame's split, or none")
    unknown = unknown_splits(splits)
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; a frame's split is one of {list(SPLITS)}")


def split_reports(
    predicted: list[Frame],
    reference: list[Frame],
    labels: list[str],
    splits: dict[str, str],
    report: dict,
    seed: int,
    outdir: pathlib.Path,
) -> tuple[dict, dict[str, pathlib.Path]]:
    """{split: {frames, blocks, summary}} and, with more than one split, a parity plot per split."""
    out, plots = {}, {}
    names = sorted(set(splits[label] for label in labels))
    for name in names:
        members = [i for i, label in enumerate(labels) if splits[label] == name]
        pred, ref = [predicted[i] for i in members], [reference[i] for i in members]
        frames = [labels[i] for i in members]
        blocks = block_errors(pred, ref, report["operators"])
        bands = {label: report["bands"][label] for label in frames if label in report["bands"]}
        summary = summarise({"blocks": blocks, "bands": bands})
        out[name] = {"frames": frames, "blocks": blocks, "summary": summary}
        if len(names) > 1:
            samples = {op: parity_samples(pred, ref, op, seed=seed) for op in report["operators"]}
            plots[f"parity_{name}"] = outdir / f"parity_{name}.png"
            parity_plot(plots[f"parity_{name}"], samples, blocks)
    return out, plots


def gated_summary(report: dict) -> tuple[dict, str]:
    """The summary the verdict checks, and which frames it covers."""
    if GATED_SPLIT in report.get("splits", {}):
        return report["splits"][GATED_SPLIT]["summary"], GATED_SPLIT
    return report["summary"], "all"
