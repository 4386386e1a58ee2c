"""``aiida-slem export MODEL|DATASET --format deeptb|deeph -o DIR``: frames as DeePTB or DeepH folders.

A model exports the dataset it was trained on (found through the provenance graph), plus the model file
and its config, so a DeePTB or DeepH user gets the exact training data of that model.
"""

from __future__ import annotations

import json
import pathlib

import click


def training_dataset(model):
    """The DatasetData a SlemModelData was trained on (input ``dataset`` of the training job)."""
    creator = model.creator
    if creator is None or "dataset" not in creator.inputs:
        raise click.ClickException(
            f"model <{model.pk}> was not produced by a slem.train job; export its dataset "
            "by the dataset's PK instead"
        )
    return creator.inputs.dataset


def export_node(
    node, fmt: str, output: pathlib.Path, split: str | None = None, spin: str | None = None
) -> tuple[int, object]:
    """Write the frames of a dataset, a frame or a model's training data; return (count, dataset).
    ``spin``: the channel of spin-polarised frames to write (the formats hold one H per structure)."""
    from aiida_slem.data.dataset import DatasetData
    from aiida_slem.data.model import SlemModelData
    from aiida_slem.data.operator import OperatorData
    from slem.atomic import atomic_folder, check_new_folder
    from slem.data import deeph, deeptb

    check_new_folder(output)  # before the frames are read
    model = None
    if isinstance(node, SlemModelData):
        model, node = node, training_dataset(node)
    if isinstance(node, DatasetData):
        frames = node.get_frames(split)
    elif isinstance(node, OperatorData):
        if split:
            raise click.ClickException("--split applies to datasets and models, not to one OperatorData")
        frames = [node.get_frame()]
    else:
        raise click.ClickException(
            f"node <{node.pk}> is a {node.__class__.__name__}; give a SlemModelData, "
            "DatasetData or OperatorData"
        )
    if not frames:
        raise click.ClickException(f"split {split!r} of dataset <{node.pk}> holds no frame")
    if spin is not None:
        from slem.data.operators import select_spin_channel

        select_spin_channel(frames, spin)
    # one folder, complete or absent: a full disk must not leave frames that import as a shorter dataset
    with atomic_folder(output) as folder:
        if fmt == "deeptb":
            deeptb.write_deeptb(frames, folder, "frame")
        else:
            deeph.write_deeph(frames, folder)
        if model is not None:
            with model.open(mode="rb") as handle:
                (folder / "slem_model.pt").write_bytes(handle.read())
            (folder / "slem_model.json").write_text(
                json.dumps(
                    {
                        "pk": model.pk,
                        "uuid": model.uuid,
                        "sha256": model.sha256,
                        "config": model.base.attributes.get("config"),
                        "metrics": model.metrics,
                        "dataset_uuid": node.uuid,
                    },
                    indent=2,
                    default=str,
                )
            )
    return len(frames), node


@click.command("export")
@click.argument("pk", type=int)
@click.option("--format", "fmt", type=click.Choice(["deeptb", "deeph"]), required=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=pathlib.Path), required=True, help="New output folder."
)
@click.option(
    "--split",
    type=click.Choice(["train", "validation", "test"]),
    default=None,
    help="Only this split of the dataset (default: all frames).",
)
@click.option(
    "--spin",
    type=click.Choice(["up", "down"]),
    default=None,
    help="Spin-polarised frames: export this channel (run once per channel).",
)
def export(pk: int, fmt: str, output: pathlib.Path, split: str | None, spin: str | None) -> None:
    """Export node PK (a model: its training dataset and model file; a dataset; or one frame) as folders."""
    from aiida import load_profile

    from aiida_slem.cli.nodes import load_node_or_fail
    from slem.data.frame import FrameFormatError

    load_profile()
    node = load_node_or_fail(pk)
    try:
        count, dataset = export_node(node, fmt, output, split, spin)
    except (FrameFormatError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {count} frame(s) of dataset <{dataset.pk}> as {fmt} to {output}")
