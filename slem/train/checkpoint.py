"""Training checkpoints: everything needed to resume bit-exactly, written atomically."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_open

CHECKPOINT_VERSION = 1


def capture_rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - the global state is what must be saved
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - the global state is what must be saved
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a kill mid-write leaves the previous file intact."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    ema: Any | None,
    step: int,
    data_state: dict,
    best_metric: float,
    extra: dict | None = None,
) -> Path:
    state = {
        "version": CHECKPOINT_VERSION,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "rng": capture_rng_state(),
        "data_state": dict(data_state),
        "best_metric": best_metric,
        "extra": extra or {},
    }
    return atomic_torch_save(state, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        # RNG states hold numpy arrays and tuples, so the full unpickler is needed; checkpoints are
        # written by this code only.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"checkpoint {path} cannot be read ({exc}); delete it or resume from best.pt"
        ) from exc
    if state.get("version") != CHECKPOINT_VERSION:
        raise RuntimeError(
            f"checkpoint {path} has version {state.get('version')}, expected {CHECKPOINT_VERSION}"
        )
    return state


def restore_training_state(
    state: dict,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    ema: Any | None,
) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        if state["ema"] is None:
            raise RuntimeError("the checkpoint was written without EMA but the config enables it")
        ema.load_state_dict(state["ema"])
    restore_rng_state(state["rng"])
