"""Import and export DeepH-pack processed folders (one structure per folder).

Files (as written by DeepH-pack's ``openmx_get_data.jl`` and ``abacus_get_data.py``)::

    lat.dat             3x3, columns are the lattice vectors, Angstrom
    rlat.dat            3x3, columns are the reciprocal vectors (2 pi inv(lat)^T), 1/Angstrom
    site_positions.dat  3xN, columns are Cartesian positions, Angstrom
    element.dat         N atomic numbers
    orbital_types.dat   one line per atom: the l of each shell, e.g. "0 0 1 1 2"
    info.json           {"nsites", "isorthogonal", "isspinful", "norbits", "fermi_level" (eV)}
    R_list.dat          the cell shifts present, one "Rx Ry Rz" per line
    hamiltonians.h5, overlaps.h5, density_matrixs.h5
                        datasets keyed "[Rx, Ry, Rz, i, j]" (1-based atoms), the (norb_i, norb_j)
                        block <i,0|X|j,R> in eV; both [R, i, j] and [-R, j, i] are stored

A spin-orbit frame is "isspinful": its hamiltonians.h5 blocks are the complex (2 norb_i, 2 norb_j) spinor
blocks, each atom's orbitals with spin up then with spin down, as DeepH-pack's sparse_calc.jl reads them
(overlaps.h5 keeps the spatial (norb_i, norb_j) block, which DeepH expands to S (x) 1). Its density matrix,
which DeepH does not define for spinors, is written the same way as the spinor (D (x) 1 + i sum_a D_so_a (x)
sigma_a) / 2 of docs/spin-orbit.md, so the export reads back losslessly.

DeepH keeps OpenMX's real harmonics: m runs 0, +1, -1, +2, -2, +3, -3, i.e. p = (x, y, z),
d = (z2, x2-y2, xy, xz, yz), f = (z^3, xz^2, yz^2, z(x2-y2), xyz, x(x2-3y2), y(3x2-y2)), with no
sign changes relative to ours. Our order is m = -l..l (Wikipedia's real harmonics without
Condon-Shortley phase). The map is a pure permutation per shell, taken from DeepH-pack's own
``Us_openmx2wiki`` (``deeph/rotate.py``), which DeePTB also uses as ``OPENMX2DeePTB``; the
ABACUS->DeepH transform in ``abacus_get_data.py`` (reorder plus removal of ABACUS's (-1)^m phase)
is consistent with it. Shells are also reordered to our s, then p, then d, then f storage order
when a DeepH file lists them otherwise.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from ..atomic import atomic_folder, atomic_h5
from ..spinor import spinor_matrix, spinor_parts
from ._io import check_basis, completed_blocks, load_text, open_h5, read_datasets, write_datasets
from .frame import Frame, FrameFormatError, frame_from_blocks
from .operators import has_spin_orbit, refuse_spin_frames, spin_orbit_names
from .orbitals import parse_shells, shells_to_string

# the imaginary part the real parts of a spinful block may carry, relative to the block (at least 1)
TIME_REVERSAL_TOLERANCE = 1e-9

# OPENMX_TO_OURS[l][k] is the OpenMX position of our k-th orbital (m = k - l) of an l shell.
OPENMX_TO_OURS = {0: [0], 1: [1, 2, 0], 2: [2, 4, 0, 3, 1], 3: [6, 4, 2, 0, 1, 3, 5]}
H5_NAMES = {
    "H": ("hamiltonians.h5",),
    "S": ("overlaps.h5",),
    "D": ("density_matrixs.h5", "density_matrices.h5"),
}


def orbital_index(shells_deeph: Sequence[int]) -> np.ndarray:
    """Indices into a DeepH atom's orbitals that give our order: ours = deeph[index].

    Shells are stable-sorted by l (our storage order) and each shell's m components permuted."""
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells_deeph])])
    index: list[int] = []
    for shell in sorted(range(len(shells_deeph)), key=lambda s: shells_deeph[s]):
        l = shells_deeph[shell]
        if l not in OPENMX_TO_OURS:
            raise FrameFormatError(f"orbital l={l} is not supported (only s, p, d, f)")
        index.extend(int(starts[shell]) + k for k in OPENMX_TO_OURS[l])
    return np.array(index, dtype=np.int64)


def _structure_folders(root: Path) -> list[Path]:
    if (root / "element.dat").is_file():
        return [root]
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "element.dat").is_file()]
    if not folders:
        raise FileNotFoundError(f"no DeepH structure folders (with element.dat) under {root}")
    return sorted(
        folders, key=lambda p: tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))
    )


def _read_orbital_types(folder: Path, n_atoms: int) -> list[list[int]]:
    path = folder / "orbital_types.dat"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) != n_atoms:
        raise FrameFormatError(f"{path} has {len(lines)} lines but element.dat lists {n_atoms} atoms")
    try:
        return [[int(v) for v in line] for line in lines]
    except ValueError as exc:
        raise FrameFormatError(f"{path} must hold integers (the l of each shell): {exc}") from exc


def _basis_from_types(
    symbols: list[str], types: list[list[int]], basis: Mapping[str, str] | None, folder: Path
) -> dict[str, str]:
    found: dict[str, list[int]] = {}
    for symbol, shells in zip(symbols, types, strict=True):
        if found.setdefault(symbol, sorted(shells)) != sorted(shells):
            raise FrameFormatError(f"{folder}: atoms of {symbol} have different orbital types")
    if basis is None:
        return {el: shells_to_string(shells) for el, shells in found.items()}
    for el, shells in found.items():
        if el not in basis:
            raise FrameFormatError(
                f"no basis given for {el}; orbital_types.dat says {shells_to_string(shells)}"
            )
        if parse_shells(basis[el]) != shells:
            raise FrameFormatError(
                f"basis {el}={basis[el]} does not match {folder}/orbital_types.dat "
                f"({shells_to_string(shells)})"
            )
    return {el: basis[el] for el in found}


def _spatial_parts(block: np.ndarray, rows: np.ndarray, cols: np.ndarray, where: str) -> np.ndarray:
    """A spinful block (spin-major per atom, DeepH's orbital order) as its four real parts (4, n_i, n_j) in
    ours: O_0 and O_x, O_y, O_z of O_0 (x) 1 + i sum_a O_a (x) sigma_a; refused unless time-reversal
    symmetric (real parts)."""
    expected = (2 * len(rows), 2 * len(cols))
    if block.shape != expected:
        raise FrameFormatError(f"{where}: spinful block of shape {block.shape}, expected {expected}")
    scalar, vector = spinor_parts(np.asarray(block, dtype=np.complex128))
    parts = np.concatenate([scalar[None], vector])
    if float(np.abs(parts.imag).max()) > TIME_REVERSAL_TOLERANCE * max(float(np.abs(parts).max()), 1.0):
        raise FrameFormatError(
            f"{where}: the spinor block breaks time reversal (a magnetic spin-orbit Hamiltonian); slem "
            "stores non-magnetic spin-orbit operators only (docs/spin-orbit.md)"
        )
    return parts.real[:, rows][:, :, cols]


def _read_operator(path: Path, index: list[np.ndarray], spinful: bool = False) -> dict:
    blocks = {}
    with open_h5(path) as handle:
        for name, dataset in read_datasets(handle).items():
            try:
                rx, ry, rz, i, j = (int(v) for v in json.loads(name))
            except (ValueError, TypeError) as exc:
                raise FrameFormatError(
                    f"{path}: key {name!r} is not of the form '[Rx, Ry, Rz, i, j]'"
                ) from exc
            i, j = i - 1, j - 1
            if not (0 <= i < len(index) and 0 <= j < len(index)):
                raise FrameFormatError(f"{path}: key {name} names an atom outside 1..{len(index)}")
            block = dataset
            if np.iscomplexobj(block) and not spinful:
                raise FrameFormatError(f"{path}: block {name} is complex but info.json says isspinful false")
            if spinful and path.name != H5_NAMES["S"][0]:
                blocks[(i, j, rx, ry, rz)] = _spatial_parts(block, index[i], index[j], f"{path} {name}")
                continue
            if block.shape != (len(index[i]), len(index[j])):
                raise FrameFormatError(
                    f"{path}: block {name} has shape {block.shape}, orbital_types.dat gives "
                    f"({len(index[i])}, {len(index[j])})"
                )
            blocks[(i, j, rx, ry, rz)] = block[np.ix_(index[i], index[j])].astype(np.float64)
    return blocks


def read_deeph(root: str | os.PathLike, basis: Mapping[str, str] | None = None) -> list[Frame]:
    """Read one DeepH structure folder, or every structure folder under ``root``, into Frames."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"DeepH data folder {root} does not exist")
    frames = []
    for folder in _structure_folders(root):
        numbers = load_text(folder / "element.dat").astype(np.int64)
        positions = load_text(folder / "site_positions.dat").reshape(3, -1).T
        cell = load_text(folder / "lat.dat").reshape(3, 3).T
        if len(positions) != len(numbers):
            raise FrameFormatError(
                f"{folder}: site_positions.dat has {len(positions)} sites, element.dat {len(numbers)}"
            )
        info_path = folder / "info.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        spinful = bool(info.get("isspinful", False))
        if np.any(numbers <= 0) or np.any(numbers >= len(chemical_symbols)):
            raise FrameFormatError(f"{folder}/element.dat holds invalid atomic numbers")
        types = _read_orbital_types(folder, len(numbers))
        frame_basis = _basis_from_types([chemical_symbols[z] for z in numbers], types, basis, folder)
        index = [orbital_index(t) for t in types]
        blocks = {}
        for op, names in H5_NAMES.items():
            found = [folder / n for n in names if (folder / n).is_file()]
            if found:
                blocks[op] = _read_operator(found[0], index, spinful)
        if spinful:
            blocks = _split_spinful(blocks)
        if not blocks:
            raise FileNotFoundError(
                f"{folder} holds none of hamiltonians.h5, overlaps.h5, density_matrixs.h5"
            )
        meta = {"source": "deeph", "folder": folder.name}
        if "fermi_level" in info:
            meta["fermi_level"] = float(info["fermi_level"])
        frames.append(
            frame_from_blocks(numbers, positions, cell, [True] * 3, frame_basis, blocks, meta, "zero")
        )
    return frames


def _split_spinful(blocks: dict) -> dict:
    """{H: parts, S: blocks, D: parts} of a spinful folder -> H, H_so_a (and D, D_so_a: twice the parts)."""
    out = {name: value for name, value in blocks.items() if name == "S"}
    for base, factor in (("H", 1.0), ("D", 2.0)):
        if base in blocks:
            out[base] = {key: factor * parts[0] for key, parts in blocks[base].items()}
            for a, name in enumerate(spin_orbit_names(base), start=1):
                out[name] = {key: factor * parts[a] for key, parts in blocks[base].items()}
    return out


def _spinor_items(frame: Frame, base: str, inverse: list[np.ndarray]) -> dict[str, np.ndarray]:
    """hamiltonians.h5 / density_matrixs.h5 datasets of a spin-orbit frame: complex spinor blocks, spin-major
    per atom, in DeepH's orbital order (D: the spinor (D (x) 1 + i sum_a D_so_a (x) sigma_a) / 2)."""
    factor = 1.0 if base == "H" else 0.5
    scalar = completed_blocks(frame, base)
    vector = [completed_blocks(frame, name) for name in spin_orbit_names(base)]
    items = {}
    for key in sorted(set(scalar).union(*vector)):
        i, j, rx, ry, rz = key
        zero = np.zeros((len(inverse[i]), len(inverse[j])))
        parts = [scalar.get(key, zero)] + [v.get(key, zero) for v in vector]
        parts = [factor * p[np.ix_(inverse[i], inverse[j])] for p in parts]
        items[f"[{rx}, {ry}, {rz}, {i + 1}, {j + 1}]"] = spinor_matrix(parts[0], np.stack(parts[1:]))
    return items


def write_deeph(
    frames: Sequence[Frame], root: str | os.PathLike, basis: Mapping[str, str] | None = None
) -> Path:
    """Write each frame to ``root/<n>/`` in DeepH's layout and OpenMX orbital convention.

    DeepH assumes a periodic cell; molecules need a vacuum box (a non-singular cell)."""
    root = Path(root)
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to export")
    refuse_spin_frames(frames, "a DeepH folder (isspinful means spinors, not collinear spin)", spinor=True)
    for n, frame in enumerate(frames):
        check_basis(frame.basis, basis)
        if abs(np.linalg.det(frame.cell)) < 1e-8:
            raise FrameFormatError(
                f"frame {n} has a singular cell; DeepH needs a lattice (put molecules in a box)"
            )
    with atomic_folder(root) as tmp:
        for n, frame in enumerate(frames):
            folder = tmp / str(n)
            folder.mkdir()
            types = [parse_shells(frame.basis[s]) for s in frame.symbols]
            inverse = [np.argsort(orbital_index(t)) for t in types]  # deeph = ours[inverse]
            np.savetxt(folder / "lat.dat", frame.cell.T, fmt="%.18e")
            np.savetxt(folder / "rlat.dat", 2 * np.pi * np.linalg.inv(frame.cell), fmt="%.18e")
            np.savetxt(folder / "site_positions.dat", frame.positions.T, fmt="%.18e")
            np.savetxt(folder / "element.dat", frame.numbers, fmt="%d")
            (folder / "orbital_types.dat").write_text("".join("  ".join(map(str, t)) + "\n" for t in types))
            spinful = has_spin_orbit(frame.operators)
            info = {
                "nsites": frame.n_atoms,
                "isorthogonal": False,
                "isspinful": spinful,
                "norbits": int(frame.orbitals_per_atom.sum()),
                "fermi_level": float(frame.metadata.get("fermi_level", 0.0)),
            }
            (folder / "info.json").write_text(json.dumps(info, indent=2))
            shifts = sorted({tuple(int(v) * sign for v in r) for r in frame.cell_shifts for sign in (1, -1)})
            np.savetxt(folder / "R_list.dat", np.array(shifts, dtype=np.int64).reshape(-1, 3), fmt="%d")
            for op in (o for o in frame.operators if o in H5_NAMES):
                with atomic_h5(folder / H5_NAMES[op][0], in_memory=True) as handle:
                    if spinful and op != "S":
                        write_datasets(handle, _spinor_items(frame, op, inverse))
                        continue
                    items = {
                        f"[{rx}, {ry}, {rz}, {i + 1}, {j + 1}]": block[np.ix_(inverse[i], inverse[j])]
                        for (i, j, rx, ry, rz), block in sorted(completed_blocks(frame, op).items())
                    }
                    write_datasets(handle, items)
    return root
