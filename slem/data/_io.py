"""Small helpers shared by the DeePTB and DeepH folder converters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from .frame import Frame, FrameFormatError
from .operators import partner_sign


def open_h5(path: Path) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise FrameFormatError(
            f"{path} is not a readable HDF5 file ({exc}); it may be truncated or corrupt: regenerate it"
        ) from exc


def read_datasets(group: h5py.Group) -> dict[str, np.ndarray]:
    """Every dataset of a group, through h5py's low-level API: half the per-dataset overhead of
    ``group[name][()]``, which matters for DeePTB/DeepH files holding one dataset per block."""
    names: list[bytes] = []
    group.id.links.iterate(names.append)
    out = {}
    for name in names:
        try:
            dataset = h5py.h5d.open(group.id, name)
        except KeyError as exc:  # a subgroup, not a dataset
            raise FrameFormatError(f"{group.file.filename}: {name.decode()} is not a dataset") from exc
        values = np.empty(dataset.shape, dtype=dataset.dtype)
        dataset.read(h5py.h5s.ALL, h5py.h5s.ALL, values)
        out[name.decode()] = values
    return out


def write_datasets(group: h5py.Group, items: Mapping[str, np.ndarray]) -> None:
    """Create one float64 dataset per item, complex128 for complex items (h5py's (r, i) compound, which
    DeepH's Julia reads as ComplexF64), through the low-level API (see :func:`read_datasets`)."""
    for name, values in items.items():
        dtype = np.dtype("<c16") if np.iscomplexobj(values) else np.dtype("<f8")
        values = np.ascontiguousarray(values, dtype=dtype)
        dataset = h5py.h5d.create(
            group.id, name.encode(), h5py.h5t.py_create(dtype), h5py.h5s.create_simple(values.shape)
        )
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, values)


def load_text(path: Path, dtype: type = float) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    try:
        return np.loadtxt(path, dtype=dtype, ndmin=1)
    except ValueError as exc:
        raise FrameFormatError(f"{path} could not be parsed as a table of numbers ({exc})") from exc


def completed_blocks(frame: Frame, operator: str) -> dict[tuple[int, int, int, int, int], np.ndarray]:
    """All blocks of ``operator`` with every missing reverse partner X_ji(-R) = X_ij(R)^T added.

    DeePTB and DeepH expect both directions. H, S and D are real symmetric operators, so the
    partner is the transpose (minus it for the antisymmetric spin-orbit parts H_so_a, D_so_a). Blocks that
    are exactly zero are dropped except the onsite ones: both tools read an absent block as zero and their
    own writers omit vanishing blocks."""
    blocks = frame.blocks(operator)
    sign = partner_sign(operator)
    for (i, j, *r), block in list(blocks.items()):
        partner = (j, i, -r[0], -r[1], -r[2])
        if partner not in blocks:
            blocks[partner] = sign * block.T
    return {
        key: block
        for key, block in blocks.items()
        if np.any(block != 0) or (key[0] == key[1] and not any(key[2:]))
    }


def check_basis(frame_basis: Mapping[str, str], given: Mapping[str, str] | None) -> None:
    """A basis given on the command line must agree with the one a frame carries."""
    if given is None:
        return
    for element, shells in frame_basis.items():
        if element in given and given[element] != shells:
            raise FrameFormatError(
                f"basis {element}={given[element]} was given but the frames hold {element}={shells}; "
                "drop --basis or give the frames' basis"
            )
