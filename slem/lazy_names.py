"""Package attributes loaded on first use (PEP 562).

A package whose ``__init__`` imported its heavy modules would load torch or the eigen-solvers into every
process that only needs one light name from it, the AiiDA daemon included (tests/test_import_contracts.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, sources: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports ``package.<sources[name]>`` when ``name`` is first read."""

    def __getattr__(name: str):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    return __getattr__
