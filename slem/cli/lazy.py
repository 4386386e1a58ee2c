"""The click group of both commands, ``slem`` and ``aiida-slem``: subcommands imported on first use.

``slem --help`` would otherwise import torch, and ``aiida-slem --help`` the AiiDA ORM, for nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyGroup(click.Group):
    """A group whose subcommands are ``{name: (module, attribute, one-line help)}``: the package's own
    modules, imported when the subcommand runs."""

    def __init__(self, *args, subcommands: Mapping[str, tuple[str, str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.subcommands = dict(subcommands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.subcommands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.subcommands:
            return None
        module_name, attribute, _ = self.subcommands[name]
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the help text is in the table, so listing the commands imports none of them
        rows = [(name, self.subcommands[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
