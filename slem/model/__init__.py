"""SLEM: strictly localised equivariant model of LCAO operator blocks (H, S, D).

Names are loaded on first use (PEP 562), so that checking a model section (``slem.model.config``, which the
AiiDA daemon calls at submission) does not import torch and e3nn.
"""

from __future__ import annotations

from slem.lazy_names import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _SOURCES)
