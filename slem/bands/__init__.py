"""Bloch sums of real-space operator blocks, generalised eigenvalues and k-paths.

Names are loaded on first use (PEP 562), so that choosing k-points (``slem.bands.path``, used by the AiiDA
daemon through ``slem.evaluate.kpoints``) does not load the Bloch sums and eigen-solvers.
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "band_energies": "bloch",
    "bloch_matrices": "bloch",
    "generalized_eigvalsh": "bloch",
    "kpath": "path",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
