"""``aiida-slem status PK``: the process tree of a pipeline run with each step's state and timing."""

from __future__ import annotations

import datetime

import click


def _state(node) -> str:
    state = node.process_state.value if node.process_state else "created"
    if node.is_finished:
        state = "finished ok" if node.is_finished_ok else f"failed [{node.exit_status}]"
    if node.base.caching.is_created_from_cache:
        state += " (cached)"
    return state


def _duration(node) -> str:
    end = node.mtime if node.is_terminated else datetime.datetime.now(datetime.timezone.utc)
    seconds = (end - node.ctime).total_seconds()
    return f"{seconds:7.1f} s" if seconds < 600 else f"{seconds / 60:7.1f} min"


def _label(node) -> str:
    incoming = node.base.links.get_incoming(link_type=_call_link_types()).all()
    link = incoming[0].link_label if incoming else ""
    name = node.process_label or node.__class__.__name__
    return f"{name}<{node.pk}>" + (f" {link}" if link and link != "CALL" else "")


def _call_link_types():
    from aiida.common.links import LinkType

    return (LinkType.CALL_CALC, LinkType.CALL_WORK)


def tree_lines(
    node, depth: int | None = None, indent: str = "", show_calcfunctions: bool = True
) -> list[str]:
    """One line per process: name<pk> link label, state, duration; children indented below their caller."""
    from aiida import orm

    from aiida_slem.progress import job_progress

    lines = [f"{indent}{_label(node):<60} {_state(node):<22} {_duration(node)}"]
    live = job_progress(node)
    if live:
        lines.append(f"{indent}  progress: {live}")
    if depth == 0:
        return lines
    children = sorted(node.called, key=lambda n: n.ctime)
    for child in children:
        if not show_calcfunctions and isinstance(child, orm.CalcFunctionNode):
            continue
        lines += tree_lines(child, None if depth is None else depth - 1, indent + "  ", show_calcfunctions)
    return lines


def progress(node) -> tuple[int, int, int]:
    """(finished ok, failed, running) counts of CalcJobs under ``node``: a progress measure while it runs."""
    from aiida import orm

    counts = [0, 0, 0]
    for child in node.called_descendants:
        if not isinstance(child, orm.CalcJobNode):
            continue
        if child.is_finished_ok:
            counts[0] += 1
        elif child.is_terminated:
            counts[1] += 1
        else:
            counts[2] += 1
    return counts[0], counts[1], counts[2]


@click.command("status")
@click.argument("pk", type=int)
@click.option("--depth", type=int, default=None, help="Levels of sub-processes to show (default: all).")
@click.option("--no-calcfunctions", is_flag=True, help="Hide calcfunctions (snapshot selection, merge, ...).")
def status(pk: int, depth: int | None, no_calcfunctions: bool) -> None:
    """The tree of process PK (a pipeline or any step of it) with state and wall time of every step."""
    from aiida import load_profile, orm

    from aiida_slem.cli.nodes import load_node_or_fail

    load_profile()
    node = load_node_or_fail(pk, "list runs with 'verdi process list -a'")
    if not isinstance(node, orm.ProcessNode):
        raise click.ClickException(
            f"node {pk} is a {node.__class__.__name__}, not a process; give a pipeline PK"
        )
    for line in tree_lines(node, depth, show_calcfunctions=not no_calcfunctions):
        click.echo(line)
    done, failed, running = progress(node)
    click.echo(f"\njobs: {done} finished ok, {failed} failed, {running} running or waiting")
    if node.is_finished and "metrics" in node.outputs:
        summary = node.outputs.metrics.get_dict().get("summary", {})
        click.echo(
            "held-out errors: "
            + ", ".join(f"{k} {v:.3g}" for k, v in sorted(summary.items()) if v is not None and "mae" in k)
        )
