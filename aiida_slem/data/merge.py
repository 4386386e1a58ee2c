"""``merge_operator_frames``: the calcfunction that turns many ``OperatorData`` into one ``DatasetData``.

Being a calcfunction, it links every source frame to the dataset in the provenance graph.
"""

from __future__ import annotations

import itertools
import pathlib
import tempfile

from aiida import orm
from aiida.engine import calcfunction

from slem.data.frame import read_frames, write_frames

from ._frames import inspect_frames_file
from .basis import BasisData
from .dataset import SPLITS, DatasetData
from .operator import OperatorData


def check_split(split: dict, labels: list[str]) -> None:
    """Every frame label in exactly one of train/validation/test; raise ``ValueError`` otherwise."""
    unknown_splits = sorted(set(split) - set(SPLITS))
    if unknown_splits:
        raise ValueError(f"unknown split name(s) {unknown_splits}; use {SPLITS}")
    seen: dict[str, str] = {}
    for name, members in split.items():
        for label in members:
            if label not in labels:
                raise ValueError(
                    f"split '{name}' names frame '{label}', which is not among the inputs {labels}"
                )
            if label in seen:
                raise ValueError(f"frame '{label}' is in both '{seen[label]}' and '{name}'")
            seen[label] = name
    left_out = sorted(set(labels) - set(seen))
    if left_out:
        raise ValueError(f"frames {left_out} are in no split; put each frame in train, validation or test")


@calcfunction
def merge_operator_frames(
    split: orm.Dict, basis: BasisData | None = None, **frames: OperatorData
) -> DatasetData:
    """Concatenate the frames (ordered by label) into one file; ``split`` maps split name -> frame labels."""
    labels = sorted(frames)
    if not labels:
        raise ValueError("merge_operator_frames needs at least one OperatorData")
    split_labels = split.get_dict()
    check_split(split_labels, labels)
    position = {label: index for index, label in enumerate(labels)}
    indices = {name: sorted(position[label] for label in members) for name, members in split_labels.items()}
    attrs = basis_attributes(frames, basis) if basis is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "dataset.h5"
        path = write_frames(path, labelled_frames(frames), split=indices, attrs=attrs)
        return DatasetData(path)


def basis_attributes(frames: dict, basis: BasisData) -> dict:
    """The dataset file's basis attributes, after checking that every frame was projected onto ``basis``."""
    for label, node in frames.items():
        expected = {el: basis.shells[el] for el in node.base.attributes.get("elements")}
        if node.base.attributes.get("basis") != expected:
            raise ValueError(f"frame '{label}' was not projected onto the basis {basis.label} <{basis.uuid}>")
    return {"basis_label": basis.label, "cutoffs": basis.radii, "basis_uuid": basis.uuid}


def labelled_frames(frames: dict):
    """The frames of the OperatorData, by label, labelled and linked to their node: one in memory at a time,
    as write_frames streams them into the dataset file."""
    for label in sorted(frames):
        with frames[label].local_path() as path:
            frame = read_frames(path)[0]
        frame.metadata = {**frame.metadata, "source_uuid": frames[label].uuid, "label": label}
        yield frame


@calcfunction
def extend_dataset(dataset: DatasetData, basis: BasisData, **frames: OperatorData) -> DatasetData:
    """``dataset`` with ``frames`` (new DFT frames, e.g. picked by a committee) appended to its train split.

    The old frames keep their order, labels and splits; a new label that repeats an old one is refused."""
    if not frames:
        raise ValueError("extend_dataset needs at least one new OperatorData")
    attrs = basis_attributes(frames, basis)
    split = {name: list(members) for name, members in dataset.split.items()}
    n_old = dataset.n_frames
    split["train"] = split.get("train", []) + list(range(n_old, n_old + len(frames)))
    with dataset.local_path() as source, tempfile.TemporaryDirectory() as tmp:
        _, info = inspect_frames_file(source)
        repeated = sorted(set(frames) & {str(f["metadata"].get("label", i)) for i, f in enumerate(info)})
        if repeated:
            raise ValueError(f"frames {repeated} are already in dataset <{dataset.pk}>; give new labels")
        old = (read_frames(source, [index])[0] for index in range(n_old))  # one frame in memory at a time
        path = pathlib.Path(tmp) / "dataset.h5"
        path = write_frames(path, itertools.chain(old, labelled_frames(frames)), split=split, attrs=attrs)
        return DatasetData(path)
