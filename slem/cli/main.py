"""The ``slem`` command: every heavy step of the pipeline runs through it on the compute node.

Subcommands are imported lazily so that ``slem --help`` does not pay for importing torch.
"""

from __future__ import annotations

import click

from slem import __version__
from slem.allocator import keep_freed_memory
from slem.cli.lazy import LazyGroup

SUBCOMMANDS = {
    "basis": (
        "slem.cli.basis",
        "basis",
        "Build a strictly confined pseudo-atomic-orbital basis from UPF files.",
    ),
    "project": ("slem.cli.project", "project", "Project a QE SCF onto the LCAO basis: H(R), S(R), D(R)."),
    "train": ("slem.cli.train", "train", "Train a SLEM model from a YAML/JSON config."),
    "predict": (
        "slem.cli.predict",
        "predict",
        "Predict H, S and D blocks for structures with a trained model.",
    ),
    "bands": (
        "slem.cli.bands",
        "bands",
        "Band structure from predicted (or reference) H and S, with a plot.",
    ),
    "spectrum": (
        "slem.cli.spectrum",
        "spectrum",
        "Band edges and DOS of a large cell: sparse shift-invert and the kernel polynomial method.",
    ),
    "validate": (
        "slem.cli.validate",
        "validate",
        "Errors of predicted frames against held-out reference frames and pw.x: report, verdict, plots.",
    ),
    "committee": (
        "slem.cli.committee",
        "committee",
        "Spread of a committee of models on candidate frames: which frames to compute with DFT next.",
    ),
    "export": ("slem.cli.export", "export", "Convert frames to and from DeePTB and DeepH folders."),
}


@click.group(cls=LazyGroup, subcommands=SUBCOMMANDS)
@click.version_option(__version__, prog_name="slem")
def cli() -> None:
    """SLEM: strictly localized equivariant models of LCAO operators.

    Typical flow: slem basis -> slem project (per SCF) -> slem train -> slem predict / slem bands /
    slem spectrum / slem validate.
    """
    # freed tensors stay in the heap: a CPU training step no longer page-faults its working set
    # in again (slem/allocator.py; SLEM_SYSTEM_MALLOC=1 keeps glibc's defaults)
    keep_freed_memory()


if __name__ == "__main__":
    cli(prog_name="slem")
