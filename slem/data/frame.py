"""One atomic structure with its LCAO operator blocks, and the project's HDF5 file format.

Blocks follow the project convention H_ij(R) = <phi_i(r - tau_i)|H|phi_j(r - tau_j - R)>,
bond vector tau_j + R.cell - tau_i, units eV (H) and dimensionless (S, D).

Every operator of a frame is one packed 1-D array: the row-major (n_orb_i, n_orb_j)
blocks of all pairs, concatenated in pair order. This keeps a frame at a handful of
HDF5 datasets however many atoms it has. See docs/data-format.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from ..atomic import atomic_h5, check_room
from .operators import OPERATORS, check_operator_set
from .orbitals import n_orbitals

FORMAT_NAME = "slem-frames"
FORMAT_VERSION = 1


class FrameFormatError(ValueError):
    """A frame or frame file does not follow the documented format."""


@dataclass
class Frame:
    numbers: np.ndarray  # (N,) atomic numbers
    positions: np.ndarray  # (N, 3) Cartesian, Angstrom
    cell: np.ndarray  # (3, 3) rows are lattice vectors, Angstrom
    pbc: np.ndarray  # (3,) bool
    basis: dict[str, str]  # element symbol -> shell string, e.g. {"Si": "2s2p1d"}
    pairs: np.ndarray  # (P, 2) atom indices (i, j), onsite pairs included as (i, i)
    cell_shifts: np.ndarray  # (P, 3) integer R of atom j
    operators: dict[str, np.ndarray] = field(default_factory=dict)  # name -> packed blocks
    metadata: dict = field(default_factory=dict)  # JSON-serialisable provenance and checks

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(3)
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.cell_shifts = np.asarray(self.cell_shifts, dtype=np.int64).reshape(-1, 3)
        self.basis = dict(self.basis)
        self.operators = {k: np.asarray(v) for k, v in self.operators.items()}
        self.validate()

    # --- derived layout -------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return [chemical_symbols[z] for z in self.numbers]

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def orbitals_per_atom(self) -> np.ndarray:
        counts = {el: n_orbitals(b) for el, b in self.basis.items()}
        return np.array([counts[s] for s in self.symbols], dtype=np.int64)

    @property
    def block_sizes(self) -> np.ndarray:
        norb = self.orbitals_per_atom
        return norb[self.pairs[:, 0]] * norb[self.pairs[:, 1]]

    @property
    def block_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.block_sizes)])

    @property
    def bond_vectors(self) -> np.ndarray:
        """tau_j + R.cell - tau_i for every pair, Angstrom."""
        i, j = self.pairs.T
        return self.positions[j] + self.cell_shifts @ self.cell - self.positions[i]

    # --- access ---------------------------------------------------------------------
    def block(self, operator: str, pair_index: int) -> np.ndarray:
        norb = self.orbitals_per_atom
        i, j = self.pairs[pair_index]
        start = self.block_offsets[pair_index]
        flat = self.operators[operator][start : start + norb[i] * norb[j]]
        return flat.reshape(norb[i], norb[j])

    def blocks(self, operator: str) -> dict[tuple[int, int, int, int, int], np.ndarray]:
        """All blocks keyed (i, j, Rx, Ry, Rz), as DeePTB keys them (views into the packed array)."""
        norb = self.orbitals_per_atom
        offsets = self.block_offsets  # computed once: block() recomputes it on every call
        values = self.operators[operator]
        return {
            (i, j, *r): values[offsets[p] : offsets[p + 1]].reshape(norb[i], norb[j])
            for p, ((i, j), r) in enumerate(zip(self.pairs.tolist(), self.cell_shifts.tolist(), strict=True))
        }

    def pair_lookup(self) -> dict[tuple[int, int, int, int, int], int]:
        return {
            (i, j, *r): p
            for p, ((i, j), r) in enumerate(zip(self.pairs.tolist(), self.cell_shifts.tolist(), strict=True))
        }

    # --- checks ---------------------------------------------------------------------
    def validate(self) -> None:
        n = len(self.numbers)
        if self.positions.shape != (n, 3):
            raise FrameFormatError(f"positions must have shape ({n}, 3), got {self.positions.shape}")
        if np.any(self.numbers <= 0) or np.any(self.numbers >= len(chemical_symbols)):
            raise FrameFormatError(f"atomic numbers out of range: {sorted(set(self.numbers.tolist()))}")
        missing = sorted(set(self.symbols) - set(self.basis))
        if missing:
            raise FrameFormatError(
                f"no basis given for element(s) {missing}; pass basis={{'{missing[0]}': '2s2p1d', ...}}"
            )
        if len(self.pairs) != len(self.cell_shifts):
            raise FrameFormatError("pairs and cell_shifts must have the same length")
        if len(self.pairs) and (self.pairs.min() < 0 or self.pairs.max() >= n):
            raise FrameFormatError(f"pair atom indices must lie in [0, {n})")
        expected = int(self.block_sizes.sum())
        for name, values in self.operators.items():
            if name not in OPERATORS:
                raise FrameFormatError(f"unknown operator {name!r}; expected one of {OPERATORS}")
            if values.ndim != 1 or values.shape[0] != expected:
                raise FrameFormatError(
                    f"operator {name} holds {values.shape} values but the pairs and basis need ({expected},)"
                )
        try:
            check_operator_set(self.operators)
        except ValueError as exc:
            raise FrameFormatError(str(exc)) from exc


def frame_from_blocks(
    numbers: Sequence[int] | Sequence[str],
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: Sequence[bool],
    basis: Mapping[str, str],
    blocks: Mapping[str, Mapping[tuple[int, int, int, int, int], np.ndarray]],
    metadata: dict | None = None,
    missing: str = "error",
) -> Frame:
    """Build a frame from per-pair block dictionaries keyed (i, j, Rx, Ry, Rz).

    Pairs are stored sorted by key. With ``missing="error"`` all operators must hold the same
    pairs; with ``missing="zero"`` the union is taken and a block an operator lacks is zero
    (DeePTB and DeepH files omit vanishing blocks, e.g. S beyond r_a + r_b while H still reaches
    further through the non-local pseudopotential)."""
    nums = [atomic_numbers[z] if isinstance(z, str) else int(z) for z in numbers]
    if not blocks:
        raise FrameFormatError("at least one operator is needed to build a frame")
    if missing not in ("error", "zero"):
        raise ValueError(f"missing must be 'error' or 'zero', got {missing!r}")
    keys = sorted(set().union(*(table.keys() for table in blocks.values())))
    pairs = np.array([k[:2] for k in keys], dtype=np.int64).reshape(-1, 2)
    shifts = np.array([k[2:] for k in keys], dtype=np.int64).reshape(-1, 3)
    operators = {}
    for name, table in blocks.items():
        if missing == "error" and len(table) != len(keys):
            raise FrameFormatError(f"operator {name} does not hold the same pairs as the others")
        parts = []
        for k in keys:
            block = table.get(k)
            if block is None:
                block = np.zeros(_block_shape(nums, basis, k))
            parts.append(np.asarray(block).ravel())
        operators[name] = np.concatenate(parts) if keys else np.zeros(0)
    return Frame(nums, positions, cell, pbc, dict(basis), pairs, shifts, operators, metadata or {})


def _block_shape(numbers: Sequence[int], basis: Mapping[str, str], key: tuple) -> tuple[int, int]:
    try:
        return tuple(n_orbitals(basis[chemical_symbols[numbers[a]]]) for a in key[:2])
    except KeyError as exc:
        raise FrameFormatError(f"no basis given for element {exc.args[0]}") from exc
    except IndexError as exc:
        raise FrameFormatError(f"pair {key} names an atom beyond the {len(numbers)} atoms") from exc


# --- HDF5 ---------------------------------------------------------------------------
def _write_frame_group(group: h5py.Group, frame: Frame) -> None:
    group.create_dataset("numbers", data=frame.numbers)
    group.create_dataset("positions", data=frame.positions)
    group.create_dataset("cell", data=frame.cell)
    group.create_dataset("pbc", data=frame.pbc)
    group.create_dataset("pairs", data=frame.pairs)
    group.create_dataset("cell_shifts", data=frame.cell_shifts)
    for name, values in frame.operators.items():
        group.create_dataset(name, data=values, compression="gzip", compression_opts=1, shuffle=True)
    group.attrs["basis"] = json.dumps(frame.basis, sort_keys=True)
    group.attrs["metadata"] = json.dumps(frame.metadata, sort_keys=True)


def _read_frame_group(group: h5py.Group) -> Frame:
    operators = {name: group[name][()] for name in OPERATORS if name in group}
    return Frame(
        numbers=group["numbers"][()],
        positions=group["positions"][()],
        cell=group["cell"][()],
        pbc=group["pbc"][()],
        basis=json.loads(group.attrs["basis"]),
        pairs=group["pairs"][()],
        cell_shifts=group["cell_shifts"][()],
        operators=operators,
        metadata=json.loads(group.attrs.get("metadata", "{}")),
    )


def write_frames(
    path: str | os.PathLike,
    frames: Iterable[Frame],
    split: Mapping[str, Sequence[int]] | None = None,
    attrs: Mapping[str, object] | None = None,
) -> Path:
    """Write frames atomically: a temporary file in the same folder, then a rename.

    ``frames`` may be a generator: each frame is written as it comes, so memory holds one frame at a
    time. An existing file at ``path`` is left untouched if anything fails, including a ``split``
    that does not fit the number of frames."""
    path = Path(path)
    if split is not None and isinstance(frames, Sized):
        _check_split(split, len(frames))  # fail before any work when the count is known
    with atomic_h5(path) as handle:
        handle.attrs["format"] = FORMAT_NAME
        handle.attrs["version"] = FORMAT_VERSION
        handle.attrs["attrs"] = json.dumps(dict(attrs or {}), sort_keys=True)
        group = handle.create_group("frames")
        n_frames = 0
        for frame in frames:
            check_room(handle)
            _write_frame_group(group.create_group(str(n_frames)), frame)
            n_frames += 1
        if split is not None:
            _check_split(split, n_frames)
        handle.attrs["n_frames"] = n_frames
        handle.attrs["split"] = json.dumps({k: list(map(int, v)) for k, v in (split or {}).items()})
    return path


def _open_checked(path: str | os.PathLike) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"frame file {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FrameFormatError(
            f"{path} is not a readable HDF5 file ({exc}); it may be truncated or corrupt: regenerate it"
        ) from exc
    if handle.attrs.get("format") != FORMAT_NAME:
        handle.close()
        raise FrameFormatError(
            f"{path} is HDF5 but not a {FORMAT_NAME} file; convert DeePTB/DeepH folders with "
            "'slem export --import-from'"
        )
    if int(handle.attrs.get("version", -1)) > FORMAT_VERSION:
        handle.close()
        raise FrameFormatError(
            f"{path} uses format version {handle.attrs['version']}; upgrade slem to read it"
        )
    return handle


def read_frames(path: str | os.PathLike, indices: Sequence[int] | None = None) -> list[Frame]:
    with _open_checked(path) as handle:
        n = int(handle.attrs["n_frames"])
        wanted = range(n) if indices is None else indices
        try:
            frames = [_read_frame_group(handle["frames"][str(int(i))]) for i in wanted]
        except (KeyError, OSError) as exc:
            raise FrameFormatError(f"{path} is damaged or incomplete ({exc}); regenerate it") from exc
    for i, frame in zip(wanted, frames, strict=True):
        check_finite(frame, f"{path}: frame {int(i)}")
    return frames


def check_finite(frame: Frame, label: str = "frame") -> None:
    """Refuse NaN or inf in positions, cell or blocks (a failed SCF or a diverged projection), naming the
    first bad block: training on it makes every loss NaN, predicting from it gives garbage."""
    arrays = {"positions": frame.positions, "cell": frame.cell, **frame.operators}
    for name, values in arrays.items():
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        where = ""
        if name in frame.operators:
            p = int(np.searchsorted(frame.block_offsets, int(np.argmax(bad.ravel())), side="right")) - 1
            (i, j), r = frame.pairs[p].tolist(), frame.cell_shifts[p].tolist()
            where = f" (first in block i={i}, j={j}, R={r})"
        raise FrameFormatError(
            f"{label} has {int(bad.sum())} NaN or inf value(s) in {name}{where}; regenerate this frame "
            "(rerun its SCF and projection) or leave it out of the file"
        )


def read_file_info(path: str | os.PathLike) -> dict:
    """Cheap header read: number of frames, split and file-level attributes."""
    with _open_checked(path) as handle:
        return {
            "n_frames": int(handle.attrs["n_frames"]),
            "split": json.loads(handle.attrs.get("split", "{}")),
            "attrs": json.loads(handle.attrs.get("attrs", "{}")),
        }


def _check_split(split: Mapping[str, Sequence[int]], n_frames: int) -> None:
    seen: set[int] = set()
    for name, indices in split.items():
        for i in indices:
            if not 0 <= int(i) < n_frames:
                raise FrameFormatError(f"split '{name}' names frame {i}, but there are {n_frames} frames")
            if int(i) in seen:
                raise FrameFormatError(f"frame {i} appears in more than one split")
            seen.add(int(i))
