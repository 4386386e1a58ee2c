"""One line per item that ``aiida-slem setup`` creates, finds or updates."""

from __future__ import annotations

import click


def report_item(item: str, state: str, detail: str = "") -> None:
    colour = {"created": "green", "exists": "blue", "updated": "yellow"}.get(state, "white")
    click.echo(f"  {item:<34} " + click.style(f"{state:<8}", fg=colour) + (f" {detail}" if detail else ""))
