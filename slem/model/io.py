"""Save and load a model with its config and metadata in one torch file."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

import slem
from slem.atomic import atomic_path
from slem.data.orbitals import parse_shells
from slem.model.config import SlemConfig
from slem.model.slem import SlemModel, build_model

FORMAT = "slem-model/1"


class ModelFileError(ValueError):
    """A model file is unreadable or does not match what the caller expects."""


def data_hash(paths: Iterable[str | Path]) -> str:
    """sha256 over the contents of the training files (in the given order), for provenance."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def save_model(path: str | Path, model: SlemModel, extra_metadata: Mapping[str, Any] | None = None) -> None:
    """Write state dict, config and metadata (basis, species, cutoffs, version) atomically."""
    cfg = model.config
    metadata = {
        "basis": dict(cfg.basis),
        "species": list(cfg.species),
        "r_cut": dict(cfg.r_cut),
        "heads": list(cfg.heads),
        "slem_version": slem.__version__,
        "dtype": str(model.dtype).replace("torch.", ""),
    }
    metadata.update(dict(extra_metadata or {}))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": cfg.to_dict(), "state_dict": state, "metadata": metadata}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path, expected_basis: Mapping[str, str] | None = None,
               map_location: str | torch.device = "cpu") -> tuple[SlemModel, dict[str, Any]]:
    """Rebuild the model from a file; with ``expected_basis``, refuse a model trained on another basis."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch.load raises pickle, zip and OS errors alike
        if _damaged_archive(path):  # e.g. "[Errno 22] Invalid argument" for a cut-off file: say what it means
            raise ModelFileError(
                f"cannot read model file {path}: it is corrupt or truncated (not a complete torch archive); "
                "copy it again, or write it anew with slem train"
            ) from err
        raise ModelFileError(f"cannot read model file {path}: {' '.join(str(err).split())}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a SLEM model file (expected format {FORMAT}); "
                             "write it with slem.model.save_model")
    stored = dict(payload["config"])
    # files written before the distance-dependent hopping rescale existed used one mean/std per pair type
    stored.setdefault("bond_rescale_knots", 0)
    config = SlemConfig.from_dict(stored)
    if expected_basis is not None:
        _check_basis(config, expected_basis, path)
    model = build_model(config)
    dtype = next(v.dtype for v in payload["state_dict"].values() if v.is_floating_point())
    model = model.to(dtype)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location), payload["metadata"]


def _damaged_archive(path: str | Path) -> bool:
    """True when the file is not a complete zip archive (torch.save's format): cut off in a copy or a
    full disk, or not a model file at all. Files that open are not "damaged" (their error is another)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is not None
    except (zipfile.BadZipFile, EOFError, ValueError):
        return True
    except OSError:  # a readable file that fails to seek or read is damaged, a missing or unreadable one not
        return Path(path).is_file() and os.access(path, os.R_OK)


def _check_basis(config: SlemConfig, expected: Mapping[str, str], path) -> None:
    problems = []
    for s, shells in expected.items():
        if s not in config.basis:
            problems.append(f"{s}: not in the model (model species {config.species})")
        elif parse_shells(config.basis[s]) != parse_shells(shells):
            problems.append(f"{s}: model basis {config.basis[s]!r}, expected {shells!r}")
    if problems:
        raise ModelFileError(
            f"model {path} was trained for a different orbital basis: " + "; ".join(problems)
            + ". Use a model trained on this basis, or project the data onto the model's basis."
        )
