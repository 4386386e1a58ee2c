"""The click group of both commands, ``slem`` and ``aiida-slem``: subcommands imported on first use.

``slem --help`` would otherwise import torch, and ``aiida-slem --help`` the AiiDA ORM, for nothing.
"""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Mapping

import click

# the disk or quota is full, or the file system read-only: the user's fix, not a bug in the command
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


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

    def invoke(self, ctx: click.Context):
        """Output that cannot be written ends with one line, not a traceback: every writer is atomic
        (slem.atomic), so nothing partial is left to mention."""
        from slem.atomic import OutputExistsError

        try:
            return super().invoke(ctx)
        except OutputExistsError as exc:
            click.echo(f"{ctx.info_name} {ctx.invoked_subcommand}: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            if exc.errno not in WRITE_ERRNOS:
                raise
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(
                f"{ctx.info_name} {ctx.invoked_subcommand}: cannot write{where}: {exc.strerror}; free space "
                "(or quota) on that file system or choose another output path, then rerun; no partial "
                "output was kept",
                err=True,
            )
            sys.exit(1)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the help text is in the table, so listing the commands imports none of them
        rows = [(name, self.subcommands[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
