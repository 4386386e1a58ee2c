"""Import and export DeePTB data folders (the ``DefaultDataset`` text + HDF5 layout).

Layout (DeePTB 2.x, ``dptb/data/dataset/_default_dataset.py``)::

    <root>/info.json                 {"nframes", "natoms"?, "pos_type": "cart"|"frac", "pbc"}
    <root>/<prefix>.<n>/info.json    optional, overrides the root one for this folder
    <root>/<prefix>.<n>/positions.dat      (nframes * natoms, 3), Angstrom or fractional
    <root>/<prefix>.<n>/cell.dat           (3, 3) or (nframes * 3, 3), rows are lattice vectors
    <root>/<prefix>.<n>/atomic_numbers.dat (natoms,) or (nframes * natoms,)
    <root>/<prefix>.<n>/hamiltonians.h5, overlaps.h5, DM.h5 (or density_matrices.h5)

Each HDF5 file holds one group per frame ("0", "1", ...; DeePTB also accepts "1", "2", ...) of
datasets "i_j_Rx_Ry_Rz", the (norb_i, norb_j) block <i,0|X|j,R> in eV. Atom indices are 0-based
(DeePTB falls back to 1-based when "0_0_0_0_0" is absent; so do we). DeePTB's orbital order and
real-harmonic signs are Wikipedia's real spherical harmonics without Condon-Shortley phase, which
is ours, so blocks are copied unchanged. The basis is not in the files: DeePTB takes it from its
config; we read an optional ``basis.dat`` (a dict literal, as DeePTB's own examples ship) or take
it from the caller.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_folder, atomic_h5
from ._io import check_basis, completed_blocks, load_text, open_h5, read_datasets, write_datasets
from .frame import Frame, FrameFormatError, frame_from_blocks
from .operators import refuse_spin_frames
from .orbitals import n_orbitals

H5_NAMES = {"H": ("hamiltonians.h5",), "S": ("overlaps.h5",), "D": ("DM.h5", "density_matrices.h5")}


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _trajectory_folders(root: Path, prefix: str | None) -> list[Path]:
    if (root / "positions.dat").is_file():
        return [root]
    pattern = f"{prefix}.*" if prefix else "*"
    folders = [p for p in root.glob(pattern) if p.is_dir() and (p / "positions.dat").is_file()]
    if not folders:
        raise FileNotFoundError(
            f"no DeePTB trajectory folders (<prefix>.<n>/positions.dat) under {root}; "
            "check the path and prefix"
        )
    return sorted(folders, key=_natural_key)


def _load_info(folder: Path, root: Path) -> dict:
    for candidate in (folder / "info.json", root / "info.json"):
        if candidate.is_file():
            try:
                info = json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise FrameFormatError(f"{candidate} is not valid JSON ({exc})") from exc
            for key in ("nframes", "pos_type", "pbc"):
                if key not in info:
                    raise FrameFormatError(f"{candidate} lacks the required key {key!r}")
            if info["pos_type"] not in ("cart", "frac"):
                raise FrameFormatError(
                    f"{candidate}: pos_type {info['pos_type']!r} is not supported; use 'cart' or 'frac'"
                )
            return info
    raise FileNotFoundError(
        f"no info.json in {folder} or {root}; DeePTB needs one to know nframes and pos_type"
    )


def _load_basis(folder: Path, root: Path, basis: Mapping[str, str] | None) -> dict[str, str]:
    if basis is not None:
        return dict(basis)
    for candidate in (folder / "basis.dat", root / "basis.dat"):
        if candidate.is_file():
            try:
                found = ast.literal_eval(candidate.read_text().strip())
            except (ValueError, SyntaxError) as exc:
                raise FrameFormatError(f"{candidate} is not a dict literal such as {{'Si': '1s1p'}}") from exc
            if not isinstance(found, dict):
                raise FrameFormatError(f"{candidate} is not a dict literal such as {{'Si': '1s1p'}}")
            return {str(k): str(v) for k, v in found.items()}
    raise FrameFormatError(f"{folder} has no basis.dat; give the basis, e.g. --basis Si=1s1p")


def _parse_key(key: str, one_based: bool) -> tuple[int, int, int, int, int]:
    parts = key.split("_")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 5:
        raise FrameFormatError(f"block key {key!r} is not of the form 'i_j_Rx_Ry_Rz'")
    if one_based:
        values = (values[0] - 1, values[1] - 1, *values[2:])
    return values  # type: ignore[return-value]


def _frame_group(handle, frame_index: int, path: Path):
    # DeePTB numbers frame groups from "0", or from "1" when there is no "0"
    name = str(frame_index) if "0" in handle else str(frame_index + 1)
    if name not in handle:
        raise FrameFormatError(
            f"{path} has no group {name!r} for frame {frame_index} (groups: {sorted(handle)[:5]})"
        )
    return handle[name]


def _read_operator(path: Path, frame_index: int, norb: np.ndarray) -> dict:
    with open_h5(path) as handle:
        group = _frame_group(handle, frame_index, path)
        one_based = "0_0_0_0_0" not in group and "1_1_0_0_0" in group
        blocks = {}
        for name, dataset in read_datasets(group).items():
            key = _parse_key(name, one_based)
            i, j = key[:2]
            if not (0 <= i < len(norb) and 0 <= j < len(norb)):
                raise FrameFormatError(f"{path}: block {name} names an atom outside 0..{len(norb) - 1}")
            block = dataset
            if np.iscomplexobj(block):
                raise FrameFormatError(f"{path}: block {name} is complex (spin-orbit data is not supported)")
            if block.shape != (norb[i], norb[j]):
                raise FrameFormatError(
                    f"{path}: block {name} has shape {block.shape} but the basis gives "
                    f"({norb[i]}, {norb[j]}); check the basis (e.g. --basis Si=1s1p)"
                )
            blocks[key] = block.astype(np.float64)
    return blocks


def read_deeptb(
    root: str | os.PathLike, basis: Mapping[str, str] | None = None, prefix: str | None = None
) -> list[Frame]:
    """Read every frame of a DeePTB data root (or of one trajectory folder) into Frames."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DeePTB data folder {root} does not exist")
    frames = []
    for folder in _trajectory_folders(root, prefix):
        info = _load_info(folder, root)
        frame_basis = _load_basis(folder, root, basis)
        nframes = int(info["nframes"])
        pbc = np.array(np.broadcast_to(np.asarray(info["pbc"], dtype=bool), (3,)))
        pos = load_text(folder / "positions.dat").reshape(-1, 3)
        natoms = int(info.get("natoms", -1))
        natoms = natoms if natoms > 0 else len(pos) // max(nframes, 1)
        if natoms * nframes != len(pos):
            raise FrameFormatError(f"{folder}/positions.dat has {len(pos)} rows, not nframes*natoms")
        pos = pos.reshape(nframes, natoms, 3)
        if (folder / "cell.dat").is_file():
            cell = load_text(folder / "cell.dat").reshape(-1, 3)
            if len(cell) not in (3, 3 * nframes):
                raise FrameFormatError(f"{folder}/cell.dat must have 3 or 3*nframes rows, got {len(cell)}")
            cells = np.array(np.broadcast_to(cell.reshape(-1, 3, 3), (nframes, 3, 3)))
        elif pbc.any():
            raise FileNotFoundError(f"{folder}/cell.dat is missing but info.json says the system is periodic")
        else:
            cells = np.zeros((nframes, 3, 3))
        numbers = load_text(folder / "atomic_numbers.dat").astype(np.int64)
        if len(numbers) not in (natoms, natoms * nframes):
            raise FrameFormatError(f"{folder}/atomic_numbers.dat must have natoms or nframes*natoms entries")
        numbers = np.array(np.broadcast_to(numbers.reshape(-1, natoms), (nframes, natoms)))
        if info["pos_type"] == "frac":
            pos = np.einsum("fna,fab->fnb", pos, cells)
        present = {}
        for op, names in H5_NAMES.items():
            found = [folder / n for n in names if (folder / n).is_file()]
            if found:
                present[op] = found[0]
        if not present:
            raise FileNotFoundError(f"{folder} holds none of hamiltonians.h5, overlaps.h5, DM.h5")
        for index in range(nframes):
            empty = np.zeros((0, 2)), np.zeros((0, 3))
            norb = Frame(numbers[index], pos[index], cells[index], pbc, frame_basis, *empty).orbitals_per_atom
            blocks = {op: _read_operator(path, index, norb) for op, path in present.items()}
            meta = {"source": "deeptb", "folder": folder.name, "frame": index}
            structure = numbers[index], pos[index], cells[index], pbc, frame_basis
            frames.append(frame_from_blocks(*structure, blocks, meta, missing="zero"))
    return frames


def write_deeptb(
    frames: Sequence[Frame],
    root: str | os.PathLike,
    prefix: str = "frame",
    basis: Mapping[str, str] | None = None,
) -> Path:
    """Write one DeePTB trajectory folder ``<prefix>.<n>`` per frame under ``root``.

    Both directions of every pair are written (see :func:`completed_blocks`); positions are
    Cartesian. A root ``info.json`` is written when all frames share their periodicity, and each
    folder also carries its own, which DeePTB prefers."""
    root = Path(root)
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to export")
    refuse_spin_frames(frames, "a DeePTB folder")
    for frame in frames:
        check_basis(frame.basis, basis)
    pbcs = {tuple(bool(p) for p in f.pbc) for f in frames}
    with atomic_folder(root) as tmp:
        if len(pbcs) == 1:
            (tmp / "info.json").write_text(json.dumps(_info(frames[0], natoms=False), indent=2))
        for n, frame in enumerate(frames):
            for shells in frame.basis.values():
                n_orbitals(shells)  # a bad shell string fails here with its own message
            folder = tmp / f"{prefix}.{n}"
            folder.mkdir()
            np.savetxt(folder / "positions.dat", frame.positions, fmt="%.18e")
            np.savetxt(folder / "cell.dat", frame.cell, fmt="%.18e")
            np.savetxt(folder / "atomic_numbers.dat", frame.numbers, fmt="%d")
            (folder / "basis.dat").write_text(repr(dict(sorted(frame.basis.items()))) + "\n")
            (folder / "info.json").write_text(json.dumps(_info(frame, natoms=True), indent=2))
            for op in frame.operators:
                blocks = completed_blocks(frame, op)
                _check_onsite(frame, blocks, op)
                with atomic_h5(folder / H5_NAMES[op][0], in_memory=True) as handle:
                    items = {"_".join(map(str, key)): blocks[key] for key in sorted(blocks)}
                    write_datasets(handle.create_group("0"), items)
    return root


def _info(frame: Frame, natoms: bool) -> dict:
    pbc = [bool(p) for p in frame.pbc]
    info = {"nframes": 1, "pos_type": "cart", "pbc": pbc[0] if len(set(pbc)) == 1 else pbc}
    if natoms:
        info["natoms"] = frame.n_atoms
    return info


def _check_onsite(frame: Frame, blocks: Mapping, op: str) -> None:
    missing = [a for a in range(frame.n_atoms) if (a, a, 0, 0, 0) not in blocks]
    if missing:
        raise FrameFormatError(
            f"operator {op} lacks the onsite block of atom(s) {missing[:5]}; "
            "DeePTB requires every onsite block"
        )
