"""Bloch sums of real-space operator blocks, generalised eigenvalues and k-paths."""

from .bloch import band_energies, bloch_matrices, generalized_eigvalsh
from .path import kpath

__all__ = ["band_energies", "bloch_matrices", "generalized_eigvalsh", "kpath"]
