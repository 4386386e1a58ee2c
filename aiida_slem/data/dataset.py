"""``DatasetData``: many frames in one ``slem-frames`` HDF5 file, with the train/validation/test split."""

from __future__ import annotations

import pathlib

from slem.data.frame import Frame, FrameFormatError, read_frames

from ._file import SlemFileData
from ._frames import inspect_frames_file, label_string

SPLITS = ("train", "validation", "test")


def _statistics(frames: list[dict]) -> dict:
    totals: dict[str, dict[str, int]] = {"atoms_per_element": {}, "blocks_per_element_pair": {}}
    for frame in frames:
        for key, table in totals.items():
            for name, count in frame[key].items():
                table[name] = table.get(name, 0) + int(count)
    return {key: dict(sorted(table.items())) for key, table in totals.items()}


class DatasetData(SlemFileData):
    """Attributes: ``n_frames``, ``n_frames_per_split``, ``split`` (frame indices per split), ``formulas``,
    ``elements``, ``basis``, ``basis_label``, ``cutoffs`` (orbital radius per element, Angstrom) and
    ``operators`` (present in every frame)."""

    DEFAULT_FILENAME = "dataset.h5"

    def _inspect(self, path: pathlib.Path) -> dict:
        info, frames = inspect_frames_file(path)
        if not frames:
            raise FrameFormatError(f"{path.name} holds no frame; a dataset needs at least one")
        split = {name: sorted(int(i) for i in indices) for name, indices in info["split"].items()}
        unknown = sorted(set(split) - set(SPLITS))
        if unknown:
            raise FrameFormatError(f"unknown split name(s) {unknown}; use {SPLITS}")
        # frames of several compositions each record their own elements' shells; one element, one basis
        basis: dict[str, str] = {}
        for number, frame in enumerate(frames):
            for element, shells in frame["basis"].items():
                if basis.setdefault(element, shells) != shells:
                    raise FrameFormatError(
                        f"{path.name} mixes bases: element {element} has {shells} in frame {number} but "
                        f"{basis[element]} in an earlier one; project every frame onto one basis"
                    )
        file_attrs = info["attrs"]
        return {
            "n_frames": len(frames),
            "split": split,
            "n_frames_per_split": {name: len(split.get(name, [])) for name in SPLITS},
            "formulas": sorted({f["formula"] for f in frames}),
            "elements": sorted({el for f in frames for el in f["elements"]}),
            "basis": dict(sorted(basis.items())),
            "basis_label": file_attrs.get("basis_label")
            or label_string(frames[0]["metadata"].get("basis_label")),
            "cutoffs": file_attrs.get("cutoffs", {}),
            # the BasisData the frames were projected onto (merge_operator_frames), for the train job's check
            "basis_uuid": file_attrs.get("basis_uuid"),
            "operators": sorted(set.intersection(*(set(f["operators"]) for f in frames))),
            "n_atoms": [f["n_atoms"] for f in frames],
            # what the model is fitted on: atoms per element and H/S/D blocks per element pair (onsite
            # included) of the training split; a pair absent here gets prior statistics (docs/transfer.md)
            "train_statistics": _statistics([frames[i] for i in split.get("train", range(len(frames)))]),
        }

    @property
    def n_frames(self) -> int:
        return self.base.attributes.get("n_frames")

    @property
    def split(self) -> dict[str, list[int]]:
        return self.base.attributes.get("split")

    def get_frames(self, split: str | None = None) -> list[Frame]:
        """All frames, or those of one split (``train``, ``validation`` or ``test``)."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
        indices = None if split is None else self.split.get(split, [])
        with self.local_path() as path:
            return read_frames(path, indices)
