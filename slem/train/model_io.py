"""The training code's only contact points with the model and graph packages."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from slem.data.frame import Frame
from slem.data.graph import build_graph
from slem.data.graph import collate as _collate


def make_model_config(
    model: Mapping,
    species: list[str],
    basis: dict[str, str],
    r_cut: dict[str, float],
    operators: Sequence[str],
):
    """SlemConfig from the config's ``model`` section; species, basis and r_cut come from the
    data unless given, the heads are the trained operators."""
    from slem.model import SlemConfig

    fields = dict(model)
    fields.setdefault("species", list(species))
    fields.setdefault("basis", dict(basis))
    fields.setdefault("r_cut", dict(r_cut))
    fields["heads"] = list(operators)
    config = SlemConfig(**fields)
    _warn_truncated_m(config)
    return config


def _warn_truncated_m(config) -> None:
    """The SO(2) layers carry bond-frame components |m| <= the hidden lmax, so with hidden lmax below
    2 x the largest orbital l some hopping components can never be predicted. Measured on Si8 DZP
    (2s2p1d): hidden lmax 2 left nearest-neighbour d-d blocks 184 meV off on the training frames,
    lmax 4 brought all nearest-neighbour blocks to 4 meV."""
    from slem.data.operators import base_operator
    from slem.data.orbitals import parse_shells
    from slem.model.irreps import Irreps

    need = 2 * max(max(parse_shells(config.basis[s])) for s in config.species)
    have = Irreps.parse(config.hidden_irreps).lmax
    if have < need and any(base_operator(h) in ("H", "D") for h in config.heads):
        warnings.warn(
            f"model.hidden_irreps {config.hidden_irreps!r} has lmax {have}, below 2 x the largest orbital l "
            f"({need}): hopping components with |m| > {have} in the bond frame will be predicted as zero. "
            f"Add channels up to l = {need}, e.g. '+4x3o+4x4e' for d orbitals.",
            stacklevel=3,
        )


def build(model_config) -> torch.nn.Module:
    from slem.model import build_model

    return build_model(model_config)


def fill_exact_overlap(model: torch.nn.Module, basis_path: str | None) -> None:
    """Tabulate the exact S of ``model.overlap: basis`` from the basis file (a no-op otherwise).

    A wrong file is refused here and again by the head's fit, which compares it with the data's S."""
    from slem.basis.orbital import BasisFileError, read_basis
    from slem.model.exact_overlap import BasisMismatchError, ExactOverlapHead
    from slem.train.config import ConfigError

    if not isinstance(model.heads["S"] if "S" in model.heads else None, ExactOverlapHead):
        return
    if not basis_path:
        raise ConfigError(["model.overlap: basis needs dataset.basis_path (the basis.h5 of slem basis)"])
    try:
        model.heads["S"].set_basis(read_basis(basis_path))
    except FileNotFoundError as exc:
        raise ConfigError([f"dataset.basis_path: {basis_path} does not exist"]) from exc
    except (BasisFileError, BasisMismatchError, OSError, KeyError) as exc:
        raise ConfigError([f"dataset.basis_path: {exc}"]) from exc


def cutoffs(model_config) -> dict[str, float]:
    r_cut = model_config.r_cut
    if isinstance(r_cut, Mapping):
        return {s: float(r_cut[s]) for s in model_config.species}
    return {s: float(r_cut) for s in model_config.species}


def graph_from_frame(frame: Frame, model_config, dtype: torch.dtype, operators: Sequence[str]) -> dict:
    return build_graph(frame, list(model_config.species), cutoffs(model_config), dtype, operators)


def collate(graphs: Sequence[dict]) -> dict:
    return graphs[0] if len(graphs) == 1 else _collate(graphs)


def fit_rescale(model: torch.nn.Module, graphs: list[dict], operators: Sequence[str]) -> None:
    from slem.model import fit_rescale as _fit
    from slem.model.exact_overlap import BasisMismatchError
    from slem.train.config import ConfigError

    try:
        _fit(model, graphs, operators=list(operators))
    except BasisMismatchError as exc:
        raise ConfigError([f"dataset.basis_path: {exc}"]) from exc


def forward(model: torch.nn.Module, graph: dict, edge_chunk: int | None = None) -> dict:
    if edge_chunk:
        return model(graph, edge_chunk=edge_chunk)
    return model(graph)


def save(path: str | Path, model: torch.nn.Module, metadata: dict) -> None:
    from slem.model import save_model

    save_model(path, model, metadata)


def config_dict(model_config) -> dict:
    return dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else dict(model_config)


def load_parent(path: Path):
    """The trained model of ``training.init_model``; a ``ConfigError`` if the file is absent or unreadable."""
    from slem.model.io import ModelFileError, load_model

    from .config import ConfigError

    if not path.is_file():
        raise ConfigError([f"training.init_model: {path} does not exist"])
    try:
        parent, _ = load_model(path)
    except ModelFileError as exc:
        raise ConfigError([f"training.init_model: {exc}"]) from exc
    return parent


def parent_model_section(parent, model_section: Mapping) -> dict:
    """The parent's architecture with this run's model section on top (its heads are the run's
    operators): a partial section fine-tunes the parent as it is."""
    fields = parent.config.to_dict()
    fields.pop("heads", None)
    return {**fields, **dict(model_section)}


def load_parent_weights(model: torch.nn.Module, model_config, parent, path: Path) -> None:
    """Fine-tuning: copy the parent's weights (output statistics included) into ``model``, which must
    have the same architecture; a ``ConfigError`` naming the differences otherwise."""
    from .config import ConfigError

    ours, theirs = model_config.to_dict(), parent.config.to_dict()
    differing = {
        key: (theirs.get(key), ours.get(key))
        for key in sorted(set(ours) | set(theirs))
        if ours.get(key) != theirs.get(key)
    }
    if differing:
        raise ConfigError(
            [f"training.init_model: {path} has another architecture than this run's model section "
             f"(field: (model file, this run)) {differing}; fine-tuning needs the same one: copy the model "
             "section of the run that trained it (its model file keeps it as metadata.training_config.model)"]
        )
    model.load_state_dict(parent.state_dict())
