"""The ``aiida-slem`` command: set up, inspect and drive the pipeline from the AiiDA side.

Subcommands live one per module and are imported lazily, so ``aiida-slem --help`` is instant.
"""

from __future__ import annotations

import click

from slem import __version__
from slem.cli.lazy import LazyGroup

SUBCOMMANDS = {
    "setup": (
        "aiida_slem.cli.setup",
        "setup",
        "Profile, computer, codes and pseudopotential family (idempotent).",
    ),
    "status": (
        "aiida_slem.cli.status",
        "status",
        "Tree of a pipeline run with each step's state and timing.",
    ),
    "models": ("aiida_slem.cli.models", "models", "Table of trained models with their validation errors."),
    "provenance": (
        "aiida_slem.cli.provenance",
        "provenance",
        "DFT, MD, codes and pseudopotentials behind a model.",
    ),
    "retrain": ("aiida_slem.cli.retrain", "retrain", "Rerun the pipeline of a model on a new structure."),
    "learn": (
        "aiida_slem.cli.learn",
        "learn",
        "Active learning from a finished pipeline: DFT only where a committee is unsure.",
    ),
    "export": (
        "aiida_slem.cli.export",
        "export",
        "Export a model's or dataset's data as DeePTB or DeepH folders.",
    ),
}


@click.group(cls=LazyGroup, subcommands=SUBCOMMANDS)
@click.version_option(__version__, prog_name="aiida-slem")
def cli() -> None:
    """aiida-slem: from Quantum ESPRESSO to trained SLEM models, with full provenance.

    Start with `aiida-slem setup`, then `verdi run submit_pipeline.py`.
    """
