"""``aiida-slem learn PIPELINE``: DFT only where a committee is unsure, starting from a finished pipeline.

The ``ActiveLearningWorkChain`` (docs/transfer.md) starts from the pipeline's dataset and basis. Its
candidates are the pipeline's own training structures, each repeated into its MD supercell and perturbed
``--per-structure`` times (a random strain of up to ``--strain`` per Voigt component, then Gaussian
displacements of ``--rattle`` Angstrom), plus any ``--structure`` files (every image of a trajectory).
Structures the pipeline held out are not perturbed into candidates, so its held-out splits stay unseen.
New frames are computed with the pipeline's recorded SCF, pp.x and projection inputs (cutoffs, k-spacing,
pseudopotentials, spin settings), so they belong to the same dataset as the old ones; the committee trains
with the pipeline's training overrides.
"""

from __future__ import annotations

import json
import pathlib

import click
import numpy as np

from slem.evaluate.committee import RANKINGS  # numpy only: the option's choices


def perturbed(atoms, count: int, rattle: float, strain: float, seed: int) -> list:
    """``count`` copies of ``atoms``: each a random symmetric strain (Voigt components uniform in
    +-``strain``; shears as engineering strains), atoms at the same fractional positions, then Gaussian
    displacements of standard deviation ``rattle`` Angstrom per Cartesian component."""
    # beyond the pipeline's own bound on md.strains a 'strain' is another phase
    from aiida_slem.workflows.strain import MAX_STRAIN

    if rattle < 0 or not 0 <= strain <= MAX_STRAIN:
        raise ValueError(
            f"rattle must be >= 0 and strain within [0, {MAX_STRAIN}] (got rattle {rattle}, strain "
            f"{strain}); a larger strain is another phase: give it as a --structure"
        )
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(count):
        xx, yy, zz, yz, xz, xy = rng.uniform(-strain, strain, 6)
        deformation = np.eye(3) + np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]])
        copy = atoms.copy()
        copy.set_cell(atoms.cell[:] @ deformation, scale_atoms=True)
        copy.positions += rng.normal(scale=rattle, size=copy.positions.shape)
        copies.append(copy)
    return copies


def held_out_labels(pipeline) -> set[str]:
    """Labels of the pipeline's structures that its validation holds out (structure or composition)."""
    inputs = pipeline.inputs
    labels = {inputs.hold_out_structure.value} if "hold_out_structure" in inputs else set()
    if "hold_out_elements" in inputs:
        elements = set(inputs.hold_out_elements.get_list())
        labels |= {label for label, s in inputs.structures.items() if elements <= set(s.get_symbols_set())}
    return labels


def pipeline_candidates(pipeline, per_structure: int, rattle: float, strain: float, seed: int) -> dict:
    """``{label: StructureData}``: perturbed MD supercells of the pipeline's training structures."""
    from aiida import orm

    repeat = tuple(int(n) for n in pipeline.inputs.md.supercell.get_list())
    skip = held_out_labels(pipeline)
    candidates = {}
    for number, (label, structure) in enumerate(sorted(pipeline.inputs.structures.items())):
        if label in skip:
            continue
        copies = perturbed(structure.get_ase().repeat(repeat), per_structure, rattle, strain, seed + number)
        candidates.update(
            {f"{label}_candidate_{i:03d}": orm.StructureData(ase=a) for i, a in enumerate(copies)}
        )
    return candidates


def _set_recorded(namespace, recorded) -> None:
    """Every node of the pipeline's recorded input namespace ``recorded`` onto the builder's ``namespace``."""
    from aiida import orm

    for key, value in recorded.items():
        if isinstance(value, orm.Node):
            namespace[key] = value
        else:
            _set_recorded(namespace[key], value)


def learn_builder(pipeline, candidates: dict, loop: dict):
    """An ``ActiveLearningWorkChain`` builder from the finished ``pipeline``: its dataset, basis, protocol,
    training overrides and job options, its recorded operator inputs, the ``candidates`` and the ``loop``
    inputs (n_models, select, max_rounds, target_sigma_H_meV, rank_by)."""
    from aiida_slem.cli.retrain import pipeline_codes
    from aiida_slem.workflows.active_learning import ActiveLearningWorkChain

    if not pipeline.is_finished_ok or not {"dataset", "basis"} <= set(pipeline.outputs):
        raise ValueError(
            f"pipeline <{pipeline.pk}> has not finished with a dataset and a basis "
            f"(state {pipeline.process_state.value if pipeline.process_state else None}, exit status "
            f"{pipeline.exit_status}); learn starts from a finished pipeline"
        )
    if not candidates:
        raise ValueError("no candidate structures: give --per-structure > 0 or --structure FILE")
    parameters = pipeline.inputs.builder_parameters.get_dict()
    overrides = parameters.get("overrides") or {}
    train = dict(overrides.get("train") or {})
    if overrides.get("options"):
        train.setdefault("options", overrides["options"])
    builder = ActiveLearningWorkChain.get_builder_from_protocol(
        pipeline_codes(pipeline),
        pipeline.outputs.dataset,
        pipeline.outputs.basis,
        candidates,
        protocol=parameters.get("protocol"),
        overrides={"train": train, **{k: v for k, v in loop.items() if v is not None}},
        options=parameters.get("options") or None,
        electronic_type=overrides.get("electronic_type"),
    )
    # the new frames must be computed like the dataset's: the same pw.x parameters, k-spacing, pseudos
    _set_recorded(builder.operator, pipeline.inputs.dataset.operator)
    return builder


@click.command("learn")
@click.argument("pipeline_pk", metavar="PIPELINE", type=int)
@click.option(
    "--per-structure",
    default=8,
    show_default=True,
    type=click.IntRange(min=0),
    help="Perturbed candidates per training structure of the pipeline.",
)
@click.option(
    "--rattle",
    default=0.05,
    show_default=True,
    type=float,
    help="Gaussian displacement of the candidates' atoms (Angstrom, per component).",
)
@click.option(
    "--strain",
    default=0.02,
    show_default=True,
    type=float,
    help="Largest random strain per Voigt component of the candidates' cells.",
)
@click.option(
    "--structure",
    "structure_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    help="More candidates: an ase-readable file; every image of a trajectory. Repeatable.",
)
@click.option("--models", type=click.IntRange(min=2), default=None, help="Committee members [default 4].")
@click.option(
    "--select", type=click.IntRange(min=1), default=None, help="New DFT frames per round [default 2]."
)
@click.option(
    "--rounds", type=click.IntRange(min=0), default=None, help="Rounds that add frames [default 3]."
)
@click.option(
    "--target-sigma",
    type=float,
    default=None,
    help="Stop when the largest H spread of the candidates falls below this (meV).",
)
@click.option(
    "--rank-by",
    type=click.Choice(RANKINGS),
    default=None,
    help="The committee spread that picks the new frames [default sigma_H_meV]; fermi_band_sigma_meV "
    "(the bands around E_F) finds a rare structure among the candidates sooner (docs/transfer.md).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the perturbations.")
@click.option(
    "--run", "run_here", is_flag=True, help="Run in this process instead of submitting to the daemon."
)
def learn(
    pipeline_pk,
    per_structure,
    rattle,
    strain,
    structure_files,
    models,
    select,
    rounds,
    target_sigma,
    rank_by,
    seed,
    run_here,
) -> None:
    """Active learning from the finished SlemPipelineWorkChain PIPELINE; prints the workflow's PK."""
    import ase.io
    from aiida import load_profile, orm

    from aiida_slem.cli.nodes import load_node_or_fail
    from aiida_slem.cli.retrain import launch

    load_profile()
    pipeline = load_node_or_fail(pipeline_pk)
    if getattr(pipeline, "process_label", None) != "SlemPipelineWorkChain" or "builder_parameters" not in (
        pipeline.inputs
    ):
        raise click.ClickException(
            f"node {pipeline_pk} is not a SlemPipelineWorkChain built by submit_pipeline.py "
            "(its protocol is unknown); 'aiida-slem models' lists pipelines with their models"
        )
    try:
        candidates = pipeline_candidates(pipeline, per_structure, rattle, strain, seed)
        for path in structure_files:
            stem = "".join(c if c.isalnum() else "_" for c in path.stem)
            try:
                images = ase.io.read(path, ":")
            except Exception as exc:  # noqa: BLE001 - ase raises many types for unreadable files
                raise ValueError(f"ase cannot read {path}: {exc}") from exc
            candidates.update({f"{stem}_{i:03d}": orm.StructureData(ase=a) for i, a in enumerate(images)})
        loop = {
            "n_models": models,
            "select": select,
            "max_rounds": rounds,
            "target_sigma_H_meV": target_sigma,
            "rank_by": rank_by,
        }
        builder = learn_builder(pipeline, candidates, loop)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    node = launch(builder, run_here)
    node.base.extras.set("learned_from_pipeline", pipeline.uuid)
    click.echo(
        f"ActiveLearningWorkChain<{node.pk}> ({'finished' if run_here else 'submitted'}) on "
        f"{len(candidates)} candidates from pipeline <{pipeline.pk}>; follow it with "
        f"'aiida-slem status {node.pk}'"
    )
    if run_here and node.is_finished_ok:
        history = node.base.extras.get("history", [])
        click.echo(json.dumps(history, indent=1))
