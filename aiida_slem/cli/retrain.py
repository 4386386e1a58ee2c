"""``aiida-slem retrain MODEL --structure FILE``: the pipeline that made MODEL, rerun on a new structure.

The new pipeline gets the first one's protocol, overrides, job options, GPUs and codes (recorded in its
``builder_parameters`` input), plus optional training-config overrides. With caching on (``aiida-slem
setup`` turns it on for pw.x and projection jobs) any DFT already done for identical inputs is reused.
With ``--fine-tune`` the training starts from MODEL's weights (its ``parent_model`` input) instead of
from scratch; the new structure may hold only elements MODEL knows. For another material add
``--refit-statistics``: its energy zero and bond lengths differ, so the output statistics are fitted anew
from the new frames (``training.refit_statistics``, docs/training.md).
"""

from __future__ import annotations

import json
import pathlib

import click


def producing_pipeline(model):
    """The SlemPipelineWorkChain whose training produced ``model``."""
    node = model.creator
    while node is not None and node.process_label != "SlemPipelineWorkChain":
        node = node.caller
    if node is None:
        raise click.ClickException(
            f"model <{model.pk}> was not produced by a SlemPipelineWorkChain; retrain needs "
            "the pipeline's settings (run submit_pipeline.py instead)"
        )
    if "builder_parameters" not in node.inputs:
        raise click.ClickException(
            f"pipeline <{node.pk}> was not built with get_builder_from_protocol, so its "
            "protocol is unknown; build a new pipeline with submit_pipeline.py"
        )
    return node


def pipeline_codes(pipeline) -> dict:
    inputs = pipeline.inputs
    return {
        "pw": inputs.md.md.pw.code,
        "pp": inputs.dataset.operator.pp.code,
        "slem": inputs.train.train.code,
    }


def check_fine_tune(model, structure) -> None:
    """Fine-tuning keeps the model's species and basis: refuse, before any DFT runs, a structure with
    elements the model does not know."""
    unknown = sorted(structure.get_symbols_set() - set(model.species))
    if unknown:
        raise ValueError(
            f"model <{model.pk}> knows {model.species}, not {unknown}: fine-tuning keeps the model's "
            "species; retrain without --fine-tune to train a new model from scratch"
        )


def retrain_builder(model, structure, config_overrides: dict | None = None, label: str = "structure",
                    fine_tune: bool = False):
    """A pipeline builder for ``structure`` with the settings of the pipeline that produced ``model``;
    ``fine_tune`` starts the training from ``model``'s weights."""
    from aiida_quantumespresso.workflows.protocols.utils import recursive_merge

    from aiida_slem.workflows.pipeline import SlemPipelineWorkChain

    if fine_tune:
        check_fine_tune(model, structure)
    pipeline = producing_pipeline(model)
    parameters = pipeline.inputs.builder_parameters.get_dict()
    overrides = dict(parameters.get("overrides") or {})
    # they named structures, or compositions, of the first run
    for key in ("hold_out_structure", "hold_out_elements"):
        overrides.pop(key, None)
    if config_overrides:
        train = overrides.get("train", {})
        overrides["train"] = recursive_merge(train, {"config": config_overrides})
    builder = SlemPipelineWorkChain.get_builder_from_protocol(
        pipeline_codes(pipeline),
        {label: structure},
        protocol=parameters.get("protocol"),
        overrides=overrides,
        options=parameters.get("options") or None,
        gpus=parameters.get("gpus"),
    )
    if fine_tune:
        builder.train.train.parent_model = model
    return builder, pipeline


def launch(builder, run_here: bool):
    """Run ``builder`` in this process (``run_here``) or submit it to the daemon, which must be running."""
    from aiida.engine import run_get_node, submit
    from aiida.engine.daemon.client import get_daemon_client

    if run_here:
        return run_get_node(builder)[1]
    if not get_daemon_client().is_daemon_running:
        raise click.ClickException("no daemon runs: start one with 'verdi daemon start' or pass --run")
    return submit(builder)


@click.command("retrain")
@click.argument("model_pk", metavar="MODEL", type=int)
@click.option(
    "--structure",
    "structure_file",
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    required=True,
    help="An ase-readable structure file (cif, POSCAR, xyz, ...).",
)
@click.option(
    "--config-overrides",
    type=str,
    default=None,
    help='JSON merged into the training config, e.g. \'{"training": {"max_steps": 500}}\'.',
)
@click.option(
    "--fine-tune", is_flag=True, help="Start the training from MODEL's weights instead of from scratch."
)
@click.option(
    "--refit-statistics",
    is_flag=True,
    help="With --fine-tune on another material: fit the output statistics anew from the new frames.",
)
@click.option(
    "--run", "run_here", is_flag=True, help="Run in this process instead of submitting to the daemon."
)
def retrain(
    model_pk: int,
    structure_file: pathlib.Path,
    config_overrides: str | None,
    fine_tune: bool,
    refit_statistics: bool,
    run_here: bool,
) -> None:
    """Rerun the pipeline of MODEL on the structure in FILE; prints the new pipeline's PK."""
    import ase.io
    from aiida import load_profile, orm

    from aiida_slem.cli.nodes import load_node_or_fail
    from aiida_slem.data.model import SlemModelData

    if refit_statistics and not fine_tune:
        raise click.ClickException(
            "--refit-statistics refits a fine-tuned model's output statistics: add --fine-tune (a model "
            "trained from scratch always fits them)"
        )
    load_profile()
    model = load_node_or_fail(model_pk)
    if not isinstance(model, SlemModelData):
        raise click.ClickException(f"node {model_pk} is a {model.__class__.__name__}, not a SlemModelData")
    try:
        overrides = json.loads(config_overrides) if config_overrides else None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--config-overrides is not valid JSON: {exc}") from exc
    if refit_statistics:
        overrides = overrides or {}
        overrides["training"] = {**overrides.get("training", {}), "refit_statistics": True}
    try:
        atoms = ase.io.read(structure_file)
    except Exception as exc:  # noqa: BLE001 - ase raises many types for unreadable files
        raise click.ClickException(f"ase cannot read {structure_file}: {exc}") from exc
    label = "".join(c if c.isalnum() else "_" for c in structure_file.stem) or "structure"
    try:
        builder, pipeline = retrain_builder(model, orm.StructureData(ase=atoms), overrides, label, fine_tune)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    node = launch(builder, run_here)
    node.base.extras.set("retrained_from_model", model.uuid)
    click.echo(
        f"SlemPipelineWorkChain<{node.pk}> ({'finished' if run_here else 'submitted'}) retrains the settings "
        f"of pipeline <{pipeline.pk}> (model <{model.pk}>) on {atoms.get_chemical_formula()}"
        + (f", fine-tuning model <{model.pk}>" if fine_tune else "")
    )
    if run_here and node.is_finished_ok:
        click.echo(f"new model <{node.outputs.model.pk}>, dataset <{node.outputs.dataset.pk}>")
