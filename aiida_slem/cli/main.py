"""The ``aiida-slem`` command: set up, inspect and drive the pipeline from the AiiDA side.

Subcommands live one per module and are imported lazily, so ``aiida-slem --help`` is instant.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

from slem import __version__

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
    "export": (
        "aiida_slem.cli.export",
        "export",
        "Export a model's or dataset's data as DeePTB or DeepH folders.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in SUBCOMMANDS.items() if importlib.util.find_spec(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module_name, attribute, _ = SUBCOMMANDS[name]
        if importlib.util.find_spec(module_name) is None:
            return None
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="aiida-slem")
def cli() -> None:
    """aiida-slem: from Quantum ESPRESSO to trained SLEM models, with full provenance.

    Start with `aiida-slem setup`, then `verdi run submit_pipeline.py`.
    """
