"""Training-config checks that need the frames file, and what the data implies for the model
(species, basis, per-species cutoffs). ``slem.train.config.check_config_against_dataset`` is the
public entry point."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slem.data.frame import read_file_info, read_frames
from slem.data.operators import has_spin_orbit, spin_orbit_names

from .config import ConfigError, TrainConfig
from .data_summary import DataSummary, data_problems, merged_basis


def check_against_dataset(config: TrainConfig, path: str | Path | None = None) -> dict:
    """Checks that need the frames file: it exists, has a non-empty training split, holds every
    requested operator and its basis matches ``model.basis`` if that is given (data_summary.py).

    Returns ``{"species": [...], "basis": {...}, "split": {...}, "r_cut": {...}}`` inferred from the data."""
    path = Path(path or config.dataset.path)
    if not path.is_file():
        raise ConfigError([f"dataset file {path} does not exist (dataset.path)"])
    info = read_file_info(path)
    split = {k: list(v) for k, v in info["split"].items()}
    if not split:  # a file without a split trains on everything
        split = {"train": list(range(info["n_frames"]))}
    frames = read_frames(path, indices=sorted({i for v in split.values() for i in v}))
    sources = [(path, frames, len(split.get("train", [])))]
    problems: list[str] = []
    if config.dataset.validation_path:
        vpath = Path(config.dataset.validation_path)
        if not vpath.is_file():
            problems.append(f"validation file {vpath} does not exist (dataset.validation_path)")
        else:
            sources.append((vpath, read_frames(vpath), None))
    summaries = []
    for src, fr, n_train in sources:
        basis = merged_basis([(f"frame {k} of {src}", f.basis) for k, f in enumerate(fr)], problems)
        held = set.intersection(*(set(f.operators) for f in fr)) if fr else set()
        wanted = set(spin_orbit_names("H"))
        if "H" in config.operators and not wanted <= set(config.operators) and any(
            has_spin_orbit(f.operators) for f in fr
        ):
            problems.append(
                f"dataset {src} holds spin-orbit frames: add {sorted(wanted)} to 'operators', or the model "
                "learns only their j-averaged H and misses the spin-orbit splittings (docs/spin-orbit.md)"
            )
        elements = sorted({s for f in fr for s in f.symbols})
        summaries.append(DataSummary(f"dataset {src}", sorted(held), basis, elements, n_train))
    problems += data_problems(config.operators, config.model, summaries)
    if problems:
        raise ConfigError(problems)
    species = sorted({s for summary in summaries for s in summary.elements})
    basis = {el: shells for summary in summaries for el, shells in summary.basis.items()}  # no clash is left
    return {
        "species": species,
        "basis": {el: basis[el] for el in species},
        "split": split,
        "r_cut": infer_cutoffs([f for _, fr, _ in sources for f in fr], species),
    }


def infer_cutoffs(frames: list, species: list[str]) -> dict[str, float]:
    """Per-species cutoff from the data when model.r_cut is not given.

    The stored pairs are those whose orbitals overlap, |r| < r_a + r_b, so the longest bond
    between two atoms of species s is about 2 r_s; SLEM's pair cutoff (r_a + r_b) / 2 then
    reproduces the stored pair list. Mixed pairs fill in for a species with no like pair."""
    like: dict[str, float] = {}
    mixed: dict[str, float] = {}
    for frame in frames:
        symbols = np.array(frame.symbols)
        lengths = np.linalg.norm(frame.bond_vectors, axis=1)
        if "S" in frame.operators:  # the overlap's reach is the orbitals' reach; H may hold longer tails
            sizes = frame.block_sizes
            nonzero = np.add.reduceat(np.abs(frame.operators["S"]), frame.block_offsets[:-1]) > 1e-10
            lengths = np.where(nonzero & (sizes > 0), lengths, 0.0)
        si, sj = symbols[frame.pairs[:, 0]], symbols[frame.pairs[:, 1]]
        for s in species:
            same = (si == s) & (sj == s)
            if same.any():
                like[s] = max(like.get(s, 0.0), float(lengths[same].max()))
            either = (si == s) | (sj == s)
            if either.any():
                mixed[s] = max(mixed.get(s, 0.0), float(lengths[either].max()))
    # a hair above the longest stored bond so that bond is itself an edge
    return {s: round(like.get(s, mixed.get(s, 0.0)) + 1e-3, 4) for s in species if s in like or s in mixed}
