"""``OperatorData``: one frame (structure plus H, S, D blocks) in the ``slem-frames`` HDF5 format."""

from __future__ import annotations

import pathlib

from slem.data.frame import Frame, FrameFormatError, read_frames

from ._file import SlemFileData
from ._frames import inspect_frames_file, label_string

SUMMARY_KEYS = (
    "n_electrons",
    "tr_DS",
    "tr_DH",
    "band_energy",
    "band_energy_error",
    "scf_converged",
    "kmesh",
    "basis_label",
)


class OperatorData(SlemFileData):
    """One frame file. Attributes: ``n_atoms``, ``formula``, ``elements``, ``operators``, ``basis``,
    ``n_pairs``, ``semicore_bands`` and, from the projection summary, ``n_electrons``, ``tr_DS``,
    ``tr_DH``, ``band_energy``, ...

    Only headers and shapes are read on construction; ``get_frame()`` loads the arrays.
    """

    DEFAULT_FILENAME = "frame.h5"

    def __init__(self, file=None, filename: str | None = None, summary: dict | None = None, **kwargs) -> None:
        super().__init__(file, filename=filename, **kwargs)
        if summary:
            self.set_summary(summary)

    def _inspect(self, path: pathlib.Path) -> dict:
        info, frames = inspect_frames_file(path)
        if info["n_frames"] != 1:
            raise FrameFormatError(
                f"an OperatorData holds exactly one frame, {path.name} holds {info['n_frames']}; "
                "use DatasetData for many frames"
            )
        frame = frames[0]
        attributes = {
            key: frame[key] for key in ("n_atoms", "formula", "elements", "basis", "operators", "n_pairs")
        }
        label = label_string(frame["metadata"].get("basis_label"))
        if label:
            attributes["basis_label"] = label
        # the lowest occupied bands belong to semicore shells (slem.basis.shells); 0 for older frames
        attributes["semicore_bands"] = int(frame["metadata"].get("semicore_bands") or 0)
        return attributes

    def set_summary(self, summary: dict) -> None:
        """Record the projection checks (sum rules, band energy, SCF convergence) as queryable attributes."""
        for key in SUMMARY_KEYS:
            if key in summary:
                value = label_string(summary[key]) if key == "basis_label" else summary[key]
                self.base.attributes.set(key, value)

    @property
    def n_atoms(self) -> int:
        return self.base.attributes.get("n_atoms")

    @property
    def formula(self) -> str:
        return self.base.attributes.get("formula")

    @property
    def operators(self) -> list[str]:
        return self.base.attributes.get("operators")

    def get_frame(self) -> Frame:
        with self.local_path() as path:
            return read_frames(path)[0]
