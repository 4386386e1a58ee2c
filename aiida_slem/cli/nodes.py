"""Loading the node a command names, with one message for a PK the profile lacks."""

from __future__ import annotations

import click

MODELS_HINT = "list models with 'aiida-slem models'"


def load_node_or_fail(pk: int, hint: str = MODELS_HINT):
    """The node with ``pk`` in the loaded profile, or a ClickException naming where to find one."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_node(pk)
    except NotExistent as exc:
        raise click.ClickException(f"no node with PK {pk} in this profile; {hint}") from exc
