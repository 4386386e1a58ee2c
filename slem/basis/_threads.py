"""Run the small dense linear algebra of basis generation on one BLAS thread.

The pseudo-atom works with ~100x100 matrices; OpenBLAS still spreads them over all cores, and
on a shared, busy machine that made generation 10x slower (19 s instead of 2 s for Si,
measured). threadpoolctl is not a dependency, so the OpenBLAS copies that numpy and scipy
load are found in /proc/self/maps and switched through their own C API; elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _openblas_controls() -> list[tuple[object, object]]:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    paths = {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower()}
    controls = []
    for path in sorted(p for p in paths if ".so" in p):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    controls.append((setter, getter))
                    break
            else:
                continue
            break
    return controls


@contextmanager
def single_blas_thread() -> Iterator[None]:
    controls = [(setter, getter()) for setter, getter in _openblas_controls()]
    for setter, _ in controls:
        setter(1)
    try:
        yield
    finally:
        for setter, previous in controls:
            setter(previous)
