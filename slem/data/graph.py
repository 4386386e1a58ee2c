"""Graphs of frames for the model: nodes are atoms, edges the neighbour pairs (i, j, R).

A graph is a plain ``dict[str, Tensor]`` (see docs/data-format.md, "Graphs"):

- ``pos`` (N, 3), ``species`` (N,) index into the species list, ``numbers`` (N,) atomic numbers,
  ``norb`` (N,) orbitals per atom, ``batch`` (N,) frame of each atom;
- ``edge_index`` (2, E), row 0 the centre i, row 1 the neighbour j; ``cell_shift`` (E, 3) integer R;
  ``edge_shift`` (E, 3) = R.cell, so that edge_vec = pos[j] + edge_shift - pos[i];
- ``cell`` (B, 3, 3), ``pbc`` (B, 3), ``n_atoms`` (B,), ``n_edges`` (B,);
- layout: ``onsite_sizes`` (N,) = norb_i^2 and ``onsite_offsets`` (N + 1,), ``hopping_sizes`` (E,)
  = norb_i * norb_j and ``hopping_offsets`` (E + 1,): block k of ``X_onsite`` is
  ``X_onsite[onsite_offsets[k]:onsite_offsets[k + 1]].view(norb_i, norb_i)``, row-major;
- targets ``X_onsite`` and ``X_hopping`` for each operator X the frame holds.

Edges absent from the frame's pairs get zero targets: the projection stores every pair within
r_a + r_b, beyond which S and the local H vanish. Frame pairs that are not edges (a cutoff smaller
than the orbitals' reach, or H tails from non-local projectors) are not represented in the graph.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from .frame import OPERATORS, Frame, FrameFormatError, read_file_info, read_frames
from .neighbors import neighbor_list
from .orbitals import n_orbitals

NODE_KEYS = ("pos", "species", "numbers", "norb", "onsite_sizes")
EDGE_KEYS = ("cell_shift", "edge_shift", "hopping_sizes")
GRAPH_KEYS = ("cell", "pbc", "n_atoms", "n_edges")


def _offsets(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _gather(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate values[starts[k]:starts[k] + sizes[k]]; a segment with start -1 becomes zeros."""
    out = np.zeros(int(sizes.sum()), dtype=values.dtype)
    valid = np.repeat(starts >= 0, sizes)
    base = np.repeat(np.where(starts >= 0, starts, 0) - _offsets(sizes)[:-1], sizes)
    index = base + np.arange(len(out))
    out[valid] = values[index[valid]]
    return out


def _lookup(frame: Frame, i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Index of each (i, j, R) among the frame's pairs, or -1 when the frame lacks it."""
    table = frame.pair_lookup()
    keys = zip(i.tolist(), j.tolist(), *shifts.T.tolist(), strict=True)
    return np.array([table.get(k, -1) for k in keys], dtype=np.int64)


def _structure(frame_or_atoms: Frame | Atoms, basis: Mapping[str, str] | None):
    if isinstance(frame_or_atoms, Frame):
        frame = frame_or_atoms
        if basis is not None and any(basis.get(k, v) != v for k, v in frame.basis.items()):
            raise FrameFormatError(f"basis {dict(basis)} disagrees with the frame's basis {frame.basis}")
        return frame.numbers, frame.positions, frame.cell, frame.pbc, dict(frame.basis), frame
    if isinstance(frame_or_atoms, Atoms):
        if basis is None:
            raise ValueError("building a graph from ase.Atoms needs basis={'Si': '2s2p1d', ...}")
        atoms = frame_or_atoms
        return atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc, dict(basis), None
    raise TypeError(f"expected a Frame or ase.Atoms, got {type(frame_or_atoms).__name__}")


def build_graph(
    frame_or_atoms: Frame | Atoms,
    species: Sequence[str],
    cutoffs: Mapping[str, float],
    dtype: torch.dtype = torch.float64,
    operators: Sequence[str] = OPERATORS,
    basis: Mapping[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Graph of one structure; targets are included for the operators the frame holds."""
    numbers, positions, cell, pbc, basis, frame = _structure(frame_or_atoms, basis)
    numbers = np.asarray(numbers, dtype=np.int64)
    symbols = [chemical_symbols[z] for z in numbers]
    unknown = sorted(set(symbols) - set(species))
    if unknown:
        raise ValueError(f"species {unknown} are not in the model's species list {list(species)}")
    missing = sorted(set(symbols) - set(basis))
    if missing:
        raise ValueError(f"no basis for {missing}; pass basis={{'{missing[0]}': '2s2p1d', ...}}")
    index_of = {s: k for k, s in enumerate(species)}
    norb = np.array([n_orbitals(basis[s]) for s in symbols], dtype=np.int64)
    nl = neighbor_list(positions, cell, pbc, symbols, cutoffs)
    onsite_sizes = norb**2
    hopping_sizes = norb[nl.i] * norb[nl.j]
    n = len(numbers)
    graph = {
        "pos": torch.tensor(np.array(positions, dtype=np.float64), dtype=dtype),
        "species": torch.as_tensor([index_of[s] for s in symbols], dtype=torch.long),
        "numbers": torch.as_tensor(numbers, dtype=torch.long),
        "norb": torch.as_tensor(norb),
        "batch": torch.zeros(n, dtype=torch.long),
        "edge_index": torch.as_tensor(np.stack([nl.i, nl.j]), dtype=torch.long),
        "cell_shift": torch.as_tensor(nl.shifts, dtype=torch.long),
        "edge_shift": torch.as_tensor(nl.shifts @ np.asarray(cell, dtype=np.float64), dtype=dtype),
        "cell": torch.tensor(np.array(cell, dtype=np.float64), dtype=dtype).reshape(1, 3, 3),
        "pbc": torch.tensor(np.array(pbc, dtype=bool)).reshape(1, 3),
        "n_atoms": torch.tensor([n], dtype=torch.long),
        "n_edges": torch.tensor([len(nl)], dtype=torch.long),
        "onsite_sizes": torch.as_tensor(onsite_sizes),
        "onsite_offsets": torch.as_tensor(_offsets(onsite_sizes)),
        "hopping_sizes": torch.as_tensor(hopping_sizes),
        "hopping_offsets": torch.as_tensor(_offsets(hopping_sizes)),
    }
    if frame is None:
        return graph
    wanted = [op for op in operators if op in frame.operators]
    if not wanted:
        return graph
    atoms = np.arange(n)
    onsite_pair = _lookup(frame, atoms, atoms, np.zeros((n, 3), dtype=np.int64))
    edge_pair = _lookup(frame, nl.i, nl.j, nl.shifts)
    starts = np.append(frame.block_offsets[:-1], -1)  # a lookup miss (-1) picks the trailing -1
    onsite_start = starts[onsite_pair]
    edge_start = starts[edge_pair]
    for op in wanted:
        values = frame.operators[op].astype(np.float64)
        graph[f"{op}_onsite"] = torch.as_tensor(_gather(values, onsite_start, onsite_sizes), dtype=dtype)
        graph[f"{op}_hopping"] = torch.as_tensor(_gather(values, edge_start, hopping_sizes), dtype=dtype)
    return graph


def collate(graphs: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Batch graphs into one: node and edge arrays are concatenated, edge indices offset."""
    graphs = list(graphs)
    if not graphs:
        raise ValueError("cannot collate an empty list of graphs")
    keys = set(graphs[0])
    for g in graphs[1:]:
        if set(g) != keys:
            raise ValueError(f"graphs hold different keys: {sorted(keys ^ set(g))}; build them alike")
    node_offsets = np.cumsum([0] + [int(g["n_atoms"].sum()) for g in graphs])[:-1]
    frame_offsets = np.cumsum([0] + [len(g["n_atoms"]) for g in graphs])[:-1]
    out = {
        "edge_index": torch.cat(
            [g["edge_index"] + int(o) for g, o in zip(graphs, node_offsets, strict=True)], 1
        ),
        "batch": torch.cat([g["batch"] + int(o) for g, o in zip(graphs, frame_offsets, strict=True)]),
    }
    for key in keys - set(out) - {"onsite_offsets", "hopping_offsets"}:
        out[key] = torch.cat([g[key] for g in graphs])
    out["onsite_offsets"] = torch.as_tensor(_offsets(out["onsite_sizes"].numpy()))
    out["hopping_offsets"] = torch.as_tensor(_offsets(out["hopping_sizes"].numpy()))
    return out


def _split_graph(graph: Mapping[str, torch.Tensor]) -> list[dict[str, np.ndarray]]:
    n_atoms = graph["n_atoms"].numpy()
    n_edges = graph["n_edges"].numpy()
    node_start, edge_start = _offsets(n_atoms), _offsets(n_edges)
    parts = []
    for b in range(len(n_atoms)):
        nodes = slice(node_start[b], node_start[b + 1])
        edges = slice(edge_start[b], edge_start[b + 1])
        parts.append(
            {
                "nodes": nodes,
                "edges": edges,
                "numbers": graph["numbers"][nodes].numpy(),
                "pos": graph["pos"][nodes].detach().double().numpy(),
                "cell": graph["cell"][b].detach().double().numpy(),
                "pbc": graph["pbc"][b].numpy(),
                "edge_index": graph["edge_index"][:, edges].numpy() - node_start[b],
                "cell_shift": graph["cell_shift"][edges].numpy(),
            }
        )
    return parts


def frames_from_prediction(
    graph: Mapping[str, torch.Tensor],
    outputs: Mapping[str, torch.Tensor],
    basis: Mapping[str, str],
    metadata: dict | None = None,
) -> list[Frame]:
    """One Frame per structure of a (possibly batched) graph; pairs are the onsite ones plus the edges.

    ``outputs`` holds ``X_onsite`` / ``X_hopping`` laid out as the graph's targets."""
    names = sorted({key.rsplit("_", 1)[0] for key in outputs if key.endswith(("_onsite", "_hopping"))})
    for op in names:
        if op not in OPERATORS or f"{op}_onsite" not in outputs or f"{op}_hopping" not in outputs:
            raise ValueError(
                f"outputs must hold both {op}_onsite and {op}_hopping for an operator in {OPERATORS}"
            )
    onsite_offsets = graph["onsite_offsets"].numpy()
    hopping_offsets = graph["hopping_offsets"].numpy()
    flat = {
        op: (
            outputs[f"{op}_onsite"].detach().cpu().double().numpy().ravel(),
            outputs[f"{op}_hopping"].detach().cpu().double().numpy().ravel(),
        )
        for op in names
    }
    for op, (onsite, hopping) in flat.items():
        if len(onsite) != onsite_offsets[-1] or len(hopping) != hopping_offsets[-1]:
            raise ValueError(
                f"{op} outputs hold ({len(onsite)}, {len(hopping)}) values; "
                f"the graph layout needs ({onsite_offsets[-1]}, {hopping_offsets[-1]})"
            )
    frames = []
    for part in _split_graph(graph):
        nodes, edges = part["nodes"], part["edges"]
        n = len(part["numbers"])
        pairs = np.concatenate([np.stack([np.arange(n)] * 2, 1), part["edge_index"].T])
        shifts = np.concatenate([np.zeros((n, 3), dtype=np.int64), part["cell_shift"]])
        order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], pairs[:, 1], pairs[:, 0]))
        on_start = onsite_offsets[nodes.start : nodes.stop]
        hop_start = hopping_offsets[edges.start : edges.stop]
        on_size = np.diff(onsite_offsets[nodes.start : nodes.stop + 1])
        hop_size = np.diff(hopping_offsets[edges.start : edges.stop + 1])
        operators = {}
        for op, (onsite, hopping) in flat.items():
            values = np.concatenate([onsite, hopping])
            starts = np.concatenate([on_start, hop_start + len(onsite)])
            operators[op] = _gather(values, starts[order], np.concatenate([on_size, hop_size])[order])
        frames.append(
            Frame(
                part["numbers"], part["pos"], part["cell"], part["pbc"], dict(basis),
                pairs[order], shifts[order], operators, dict(metadata or {}),
            )
        )  # fmt: skip
    return frames


def frame_from_prediction(
    graph: Mapping[str, torch.Tensor],
    outputs: Mapping[str, torch.Tensor],
    basis: Mapping[str, str],
    metadata: dict | None = None,
) -> Frame:
    """The Frame of a single-structure graph and the model's outputs (what ``slem predict`` writes)."""
    if len(graph["n_atoms"]) != 1:
        raise ValueError(f"graph holds {len(graph['n_atoms'])} structures; use frames_from_prediction")
    return frames_from_prediction(graph, outputs, basis, metadata)[0]


class FrameDataset(torch.utils.data.Dataset):
    """Graphs of the frames of a frames HDF5 file, optionally restricted to one named split.

    With ``preload`` (the default, right for the small data sets SLEM needs) every frame is read
    once and its graph cached on first use; otherwise each item reads its frame from the file."""

    def __init__(
        self,
        path: str | os.PathLike,
        species: Sequence[str],
        cutoffs: Mapping[str, float],
        split: str | None = None,
        dtype: torch.dtype = torch.float64,
        operators: Sequence[str] = OPERATORS,
        preload: bool = True,
    ) -> None:
        info = read_file_info(path)
        if split is None:
            self.indices = list(range(info["n_frames"]))
        elif split in info["split"]:
            self.indices = [int(i) for i in info["split"][split]]
        else:
            raise KeyError(f"{path} has no split {split!r}; it has {sorted(info['split'])}")
        self.path, self.species, self.cutoffs = path, list(species), dict(cutoffs)
        self.dtype, self.operators = dtype, tuple(operators)
        self._frames = read_frames(path, self.indices) if preload else None
        self._graphs: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def frame(self, k: int) -> Frame:
        if self._frames is not None:
            return self._frames[k]
        return read_frames(self.path, [self.indices[k]])[0]

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if k in self._graphs:
            return self._graphs[k]
        graph = build_graph(self.frame(k), self.species, self.cutoffs, self.dtype, self.operators)
        if self._frames is not None:
            self._graphs[k] = graph
        return graph
