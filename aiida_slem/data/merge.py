"""``merge_operator_frames``: the calcfunction that turns many ``OperatorData`` into one ``DatasetData``.

Being a calcfunction, it links every source frame to the dataset in the provenance graph.
"""

from __future__ import annotations

import pathlib
import tempfile

from aiida import orm
from aiida.engine import calcfunction

from slem.data.frame import read_frames, write_frames

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
    attrs = {}
    if basis is not None:
        attrs = {"basis_label": basis.label, "cutoffs": basis.radii, "basis_uuid": basis.uuid}
        for label in labels:
            if frames[label].base.attributes.get("basis") != {
                el: basis.shells[el] for el in frames[label].base.attributes.get("elements")
            }:
                raise ValueError(
                    f"frame '{label}' was not projected onto the basis {basis.label} <{basis.uuid}>"
                )

    def labelled_frames():
        # one frame in memory at a time: write_frames streams them into the dataset file
        for label in labels:
            with frames[label].local_path() as path:
                frame = read_frames(path)[0]
            frame.metadata = {**frame.metadata, "source_uuid": frames[label].uuid, "label": label}
            yield frame

    with tempfile.TemporaryDirectory() as tmp:
        path = write_frames(pathlib.Path(tmp) / "dataset.h5", labelled_frames(), split=indices, attrs=attrs)
        return DatasetData(path)
