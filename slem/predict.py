"""Inference: H, S and D blocks of any structure from a trained SLEM model file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from ase import Atoms

from slem.data.frame import FORMAT_NAME, Frame, read_frames
from slem.data.graph import build_graph, frame_from_prediction
from slem.data.neighbors import check_min_distance

Structure = Atoms | Frame | str | os.PathLike


def read_structures(path: str | os.PathLike) -> list[Atoms | Frame]:
    """All structures of a file: every frame of a slem frames HDF5, else every image ase can read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file {path} does not exist")
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as handle:
            is_frames = handle.attrs.get("format") == FORMAT_NAME
        if not is_frames:
            raise ValueError(
                f"{path} is HDF5 but not a slem frames file; convert it or give an ase-readable file"
            )
        return list(read_frames(path))
    import ase.io

    try:
        images = ase.io.read(path, index=":")
    except Exception as exc:  # noqa: BLE001 - ase raises many types for unreadable files
        raise ValueError(
            f"ase cannot read {path} ({exc}); give a format ase knows (xyz, cif, POSCAR, ...)"
        ) from exc
    return list(images) if isinstance(images, list) else [images]


def _flatten(structures: Structure | Iterable[Structure]) -> list[Atoms | Frame]:
    if isinstance(structures, (Atoms, Frame, str, os.PathLike)):
        structures = [structures]
    out: list[Atoms | Frame] = []
    for item in structures:
        out.extend(read_structures(item) if isinstance(item, (str, os.PathLike)) else [item])
    return out


# Layers run over slices of this many edges at inference (identical results): measured at 4096 Si atoms
# (352k edges, 2 threads) 34 us/edge and 3.0 GB peak, against 110 us/edge and 6.1 GB in one slice, where
# GB-sized temporaries make every op pay page faults and cache misses (docs/benchmarks.md).
DEFAULT_EDGE_CHUNK = 8192


class Predictor:
    """A loaded model with what is needed to turn structures into graphs."""

    def __init__(
        self, model_path: str | os.PathLike, device: str | torch.device = "cpu",
        edge_chunk: int | None = DEFAULT_EDGE_CHUNK,
    ):
        from slem.model import load_model

        self.path = Path(model_path)
        self.device = torch.device(device)
        loaded = load_model(self.path)
        self.model, self.metadata = loaded if isinstance(loaded, tuple) else (loaded, {})
        self.model = self.model.to(self.device).eval()
        self.config = self.model.config
        self.species = list(self.config.species)
        self.basis = dict(self.config.basis)
        r_cut = self.config.r_cut
        self.cutoffs = {s: float(r_cut[s] if isinstance(r_cut, dict) else r_cut) for s in self.species}
        self.dtype = next(self.model.parameters()).dtype
        self.edge_chunk = edge_chunk
        ops = getattr(self.config, "operators", None) or self.metadata.get("operators") or ("H", "S", "D")
        self.operators = list(ops)

    def check(self, structure: Atoms | Frame, label: str = "the structure") -> None:
        """Refuse, in one line naming the fix, a structure the model cannot predict: an element it was not
        trained on, a frame in another basis, or atoms closer than ``MIN_DISTANCE_ANGSTROM`` (the
        pipeline's rule, calcjobs/checks.py)."""
        if isinstance(structure, Frame):
            symbols, positions, cell, pbc = (structure.symbols, structure.positions, structure.cell,
                                             structure.pbc)
        else:
            symbols = list(structure.get_chemical_symbols())
            positions, cell, pbc = structure.positions, np.asarray(structure.cell), structure.pbc
        lacking = [el for el in dict.fromkeys(symbols) if el not in self.species]
        if lacking:
            raise ValueError(
                f"{label} has element {', '.join(lacking)}, which the model {self.path} was not trained on "
                f"(model species: {', '.join(self.species)}); use a model trained with "
                f"{', '.join(lacking)} or leave those atoms out"
            )
        if isinstance(structure, Frame):
            bad = {el: b for el, b in structure.basis.items() if self.basis.get(el, b) != b}
            if bad:
                raise ValueError(f"{label}: basis {bad} differs from the model's basis {self.basis}")
        check_min_distance(positions, cell, pbc, symbols, label)

    def graph(self, structure: Atoms | Frame) -> dict:
        self.check(structure)
        if isinstance(structure, Frame):
            structure = Atoms(
                numbers=structure.numbers,
                positions=structure.positions,
                cell=structure.cell,
                pbc=structure.pbc,
            )
        return build_graph(structure, self.species, self.cutoffs, self.dtype, operators=(), basis=self.basis)

    @torch.no_grad()
    def outputs(self, graph: dict) -> dict:
        g = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in graph.items()}
        if self.edge_chunk:
            return self.model(g, edge_chunk=self.edge_chunk)
        return self.model(g)

    def predict(self, structure: Atoms | Frame) -> Frame:
        graph = self.graph(structure)
        out = self.outputs(graph)
        meta = {"predicted_by": str(self.path), "model_metadata": _jsonable(self.metadata)}
        return frame_from_prediction(graph, {k: v.cpu() for k, v in out.items()}, self.basis, meta)


def _jsonable(meta: dict) -> dict:
    keep = (
        "slem_version",
        "species",
        "basis",
        "cutoffs",
        "training_data_sha256",
        "operators",
        "steps",
        "onsite_shift",
    )
    return {k: meta[k] for k in keep if k in meta}


def predict_frames(
    model_path: str | os.PathLike,
    structures: Structure | Sequence[Structure],
    device: str = "cpu",
    edge_chunk: int | None = DEFAULT_EDGE_CHUNK,
) -> list[Frame]:
    """Predicted blocks (every operator the model has) for each structure, as Frames.

    ``structures``: ase Atoms, Frames (their blocks are ignored), or paths of ase-readable files or
    slem frames HDF5 files (every frame/image is predicted)."""
    predictor = Predictor(model_path, device=device, edge_chunk=edge_chunk)
    return [predictor.predict(s) for s in _flatten(structures)]
