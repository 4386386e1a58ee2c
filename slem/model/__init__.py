"""SLEM: strictly localised equivariant model of LCAO operator blocks (H, S, D).

Names are loaded on first use (PEP 562), so that checking a model section (``slem.model.config``, which the
AiiDA daemon calls at submission) does not import torch and e3nn.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "ModelConfigError": "config",
    "SlemConfig": "config",
    "fit_rescale": "fit",
    "ModelFileError": "io",
    "data_hash": "io",
    "load_model": "io",
    "save_model": "io",
    "check_overlap_positive": "overlap",
    "SlemModel": "slem",
    "build_model": "slem",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
