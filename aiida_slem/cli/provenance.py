"""``aiida-slem provenance MODEL``: the DFT and MD runs, codes and pseudopotentials behind a model."""

from __future__ import annotations

import shutil
from pathlib import Path

import click


def tables(summary: dict) -> str:
    from tabulate import tabulate

    from aiida_slem.provenance import code_label, code_text, pw_calculation_kind

    model, dataset, training = summary["model"], summary["dataset"], summary["training"]
    lines = [
        f"Model <{model.pk}>  species {model.species}  n_params {model.n_params}  sha256 {model.sha256[:12]}"
    ]
    if training is None:
        lines.append("  not created by a slem.train job (imported?): no upstream provenance recorded")
        return "\n".join(lines)
    lines.append(f"  trained by {training.process_label}<{training.pk}> with {code_label(training)}")
    if dataset is not None:
        attrs = dataset.base.attributes
        lines.append(
            f"  dataset DatasetData<{dataset.pk}>: {attrs.get('n_frames')} frames "
            f"{attrs.get('n_frames_per_split')}, formulas {attrs.get('formulas')}, "
            f"basis {attrs.get('basis')}"
        )

    frames = summary["frames"]
    if frames:
        rows = []
        for origin in frames:
            scf = origin.by_kind("scf")
            md = [c for c in origin.pw_calculations if pw_calculation_kind(c) != "scf"]
            rows.append(
                [
                    origin.label,
                    origin.operator.pk,
                    ", ".join(str(c.pk) for c in scf) or "-",
                    ", ".join(f"{c.pk} ({pw_calculation_kind(c)})" for c in md) or "-",
                ]
            )
        lines += ["", "Frames", tabulate(rows, headers=["frame", "OperatorData", "pw.x SCF", "pw.x MD"])]

    rows = [
        [
            calc.pk,
            calc.process_label,
            _kind(calc),
            code_label(calc),
            calc.exit_status,
            calc.ctime.strftime("%Y-%m-%d %H:%M"),
        ]
        for calc in summary["calculations"]
    ]
    lines += [
        "",
        "Calculations",
        tabulate(rows, headers=["pk", "process", "kind", "code", "exit", "created"]),
    ]

    rows = [[p.pk, p.element, p.filename, p.md5] for p in summary["pseudopotentials"]]
    lines += [
        "",
        "Pseudopotentials",
        tabulate(rows, headers=["pk", "element", "file", "md5"]) if rows else "  none upstream",
    ]

    rows = [
        [
            c.pk,
            code_text(c),
            type(c).__name__,
            getattr(c, "filepath_executable", "-"),
            c.default_calc_job_plugin or "-",
        ]
        for c in summary["codes"]
    ]
    lines += ["", "Codes", tabulate(rows, headers=["pk", "code", "type", "executable", "plugin"])]
    return "\n".join(lines)


def _kind(calc) -> str:
    from aiida_slem.provenance import PW_PROCESS_TYPE, pw_calculation_kind

    return pw_calculation_kind(calc) if calc.process_type == PW_PROCESS_TYPE else "-"


def draw_graph(model, output: Path) -> None:
    """The provenance graph upstream of the model, drawn with graphviz (needs the 'dot' executable)."""
    if shutil.which("dot") is None:
        raise click.ClickException(
            "graphviz's 'dot' executable is not installed, so no graph was drawn (the tables above are "
            "complete). Install it with 'apt-get install graphviz' or 'conda install graphviz'."
        )
    from aiida.tools.visualization import Graph

    graph = Graph(graph_attr={"rankdir": "TB"})
    graph.recurse_ancestors(model, depth=None, annotate_links="both", include_process_inputs=True)
    rendered = graph.graphviz.render(
        filename=output.stem,
        directory=str(output.parent),
        format=output.suffix.lstrip(".") or "png",
        cleanup=True,
    )
    click.echo(f"graph written to {rendered}")


@click.command("provenance")
@click.argument("model")
@click.option(
    "--graph",
    "graph_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the upstream provenance graph to this file (PNG/SVG/PDF; needs graphviz).",
)
@click.option("--profile", default=None, help="AiiDA profile (default: the default profile).")
def provenance(model: str, graph_path: Path | None, profile: str | None) -> None:
    """The dataset, pw.x SCF and MD runs, codes and pseudopotentials behind MODEL (pk or uuid)."""
    from aiida import load_profile
    from aiida.common.exceptions import NotExistent

    from aiida_slem.provenance import as_model, provenance_summary

    load_profile(profile, allow_switch=True)
    try:
        node = as_model(int(model) if model.isdigit() else model)
    except (NotExistent, TypeError) as exc:
        raise click.ClickException(f"{exc}; list the models with 'aiida-slem models'") from exc
    click.echo(tables(provenance_summary(node)))
    if graph_path is not None:
        draw_graph(node, graph_path)
