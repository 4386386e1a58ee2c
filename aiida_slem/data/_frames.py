"""Header-only inspection of ``slem-frames`` HDF5 files, so that the daemon never reads operator arrays."""

from __future__ import annotations

import json
import pathlib
from collections import Counter

import h5py
import numpy as np
from ase.data import chemical_symbols
from ase.formula import Formula

from slem.data.frame import OPERATORS, FrameFormatError, read_file_info
from slem.data.orbitals import BasisStringError, orbital_counts


def formula_of(numbers: np.ndarray) -> str:
    return Formula.from_list([chemical_symbols[z] for z in numbers]).format("hill")


def label_string(label) -> str:
    """A basis label as one string; ``slem project`` records one label per element."""
    if isinstance(label, dict):
        return "+".join(sorted(set(label.values())))
    return str(label or "")


def inspect_frame_group(group: h5py.Group, where: str) -> dict:
    """Check one frame group from its small datasets and the operators' shapes; return its summary."""
    try:
        numbers = group["numbers"][()]
        pairs = group["pairs"][()]
        basis = json.loads(group.attrs["basis"])
        metadata = json.loads(group.attrs.get("metadata", "{}"))
        shapes = {name: group[name].shape for name in OPERATORS if name in group}
        n_shifts = group["cell_shifts"].shape[0]
        pbc = group["pbc"][()]
    except (KeyError, OSError, ValueError) as exc:
        raise FrameFormatError(f"{where} is damaged or incomplete ({exc}); regenerate it") from exc
    symbols = [chemical_symbols[z] for z in numbers]
    missing = sorted(set(symbols) - set(basis))
    if missing:
        raise FrameFormatError(f"{where}: no basis recorded for element(s) {missing}")
    try:
        counts = orbital_counts(basis)
    except BasisStringError as exc:
        raise FrameFormatError(f"{where}: {exc}") from exc
    if n_shifts != len(pairs):
        raise FrameFormatError(f"{where}: pairs and cell_shifts differ in length")
    if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(numbers)):
        raise FrameFormatError(f"{where}: pair atom indices out of range")
    norb = np.array([counts[s] for s in symbols], dtype=np.int64)
    expected = int((norb[pairs[:, 0]] * norb[pairs[:, 1]]).sum()) if len(pairs) else 0
    for name, shape in shapes.items():
        if shape != (expected,):
            raise FrameFormatError(
                f"{where}: operator {name} has shape {shape}, the pairs and basis need ({expected},)"
            )
    pair_labels = ["-".join(sorted((symbols[i], symbols[j]))) for i, j in pairs[:, :2]] if len(pairs) else []
    return {
        "n_atoms": int(len(numbers)),
        "atoms_per_element": dict(sorted(Counter(symbols).items())),
        "blocks_per_element_pair": dict(sorted(Counter(pair_labels).items())),
        "formula": formula_of(numbers),
        "elements": sorted(set(symbols)),
        "basis": basis,
        "operators": [name for name in OPERATORS if name in shapes],
        "n_pairs": int(len(pairs)),
        "pbc": [bool(p) for p in pbc],
        "metadata": metadata,
    }


def inspect_frames_file(path: pathlib.Path) -> tuple[dict, list[dict]]:
    """Return the file header (``read_file_info``) and one summary per frame; raise ``FrameFormatError``."""
    info = read_file_info(path)
    summaries = []
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FrameFormatError(f"{path} is not readable ({exc}); regenerate it") from exc
    with handle:
        if "frames" not in handle:
            raise FrameFormatError(f"{path} has no 'frames' group; regenerate it")
        for index in range(info["n_frames"]):
            if str(index) not in handle["frames"]:
                raise FrameFormatError(f"{path} lacks frame {index} of {info['n_frames']}; regenerate it")
            summaries.append(inspect_frame_group(handle["frames"][str(index)], f"{path.name} frame {index}"))
    return info, summaries
