"""Bloch sums of real-space operator blocks, generalised eigenvalues and k-paths.

Names are loaded on first use (PEP 562), so that choosing k-points (``slem.bands.path``, used by the AiiDA
daemon through ``slem.evaluate.kpoints``) does not load the Bloch sums and eigen-solvers.
"""

from __future__ import annotations

from slem.lazy_names import lazy_getattr

_SOURCES = {
    "band_energies": "bloch",
    "bloch_matrices": "bloch",
    "fermi_band_window": "window",
    "generalized_eigvalsh": "bloch",
    "inversion_parities": "parity",
    "kpath": "path",
    "occupied_bands": "window",
}

__all__ = sorted(_SOURCES)

__getattr__ = lazy_getattr(__name__, _SOURCES)
