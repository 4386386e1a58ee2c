"""Frames of a training run, split into train/validation/test and turned into model graphs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from slem.data.frame import Frame, read_frames
from slem.data.orbitals import n_orbitals

from .config import TrainConfig
from .loss import ElementLayout, element_layout


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SplitData:
    train: list[Frame]
    validation: list[Frame]
    test: list[Frame]
    sha256: dict[str, str] = field(default_factory=dict)


def load_splits(config: TrainConfig, split: dict[str, list[int]]) -> SplitData:
    """Frames per split. A separate validation file replaces the file's own validation split."""
    path = Path(config.dataset.path)
    wanted = {name: [int(i) for i in split.get(name, [])] for name in ("train", "validation", "test")}
    order = sorted({i for v in wanted.values() for i in v})
    frames = dict(zip(order, read_frames(path, indices=order), strict=True))
    data = SplitData(
        train=[frames[i] for i in wanted["train"]],
        validation=[frames[i] for i in wanted["validation"]],
        test=[frames[i] for i in wanted["test"]],
        sha256={"dataset": file_sha256(path)},
    )
    if config.dataset.validation_path:
        data.validation = read_frames(config.dataset.validation_path)
        data.sha256["validation"] = file_sha256(config.dataset.validation_path)
    return data


class GraphCache:
    """Graphs built once per frame (the model input with targets), keyed by (split, index)."""

    def __init__(self, build, frames: dict[str, list[Frame]]):
        self._build = build
        self._frames = frames
        self._graphs: dict[tuple[str, int], dict] = {}

    def get(self, split: str, index: int) -> dict:
        key = (split, index)
        if key not in self._graphs:
            self._graphs[key] = self._build(self._frames[split][index])
        return self._graphs[key]

    def all(self, split: str) -> list[dict]:
        return [self.get(split, i) for i in range(len(self._frames[split]))]


def orbitals_per_atom(graph: dict, species: list[str], basis: dict[str, str]) -> np.ndarray:
    if "norb" in graph:
        return graph["norb"].cpu().numpy().astype(np.int64)
    counts = np.array([n_orbitals(basis[s]) for s in species], dtype=np.int64)
    return counts[
        np.asarray(graph["species"].cpu() if torch.is_tensor(graph["species"]) else graph["species"])
    ]


def batch_layout(
    graph: dict, species: list[str], basis: dict[str, str], device: torch.device
) -> ElementLayout:
    norb = orbitals_per_atom(graph, species, basis)
    edge_index = graph["edge_index"].cpu().numpy()
    batch = graph["batch"].cpu().numpy() if "batch" in graph else np.zeros(len(norb), dtype=np.int64)
    return element_layout(norb, edge_index, batch, device=device)


def graph_to(graph: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in graph.items()}
