"""Electronic structure of large cells from an H(R), S(R) without dense diagonalisation.

* ``sparse``: H(k), S(k) as scipy CSR from a frame's packed blocks (memory linear in atoms)
* ``edges``: eigenvalues nearest an energy and the HOMO/LUMO by shift-invert Lanczos, with the inertia
  of the sparse LDL^T factorization counting the states below the shift
* ``kpm``: the density of states of H c = E S c by the kernel polynomial method (Jackson kernel)
* ``overlap``: S^{-1} by conjugate gradients or sparse LU, S^{-1/2} by a Chebyshev series, Lanczos bounds
* ``analysis.frame_spectrum``: all of it for one frame, as ``slem spectrum`` runs it
"""

from .analysis import SpectrumError, electron_count, frame_spectrum
from .edges import BandEdges, EdgesError, ShiftInvert, band_edges
from .kpm import KpmError, KpmMoments, kpm_moments
from .overlap import OverlapError, OverlapSolver
from .sparse import BlochPattern, sparse_bloch

__all__ = [
    "BandEdges",
    "BlochPattern",
    "EdgesError",
    "KpmError",
    "KpmMoments",
    "OverlapError",
    "OverlapSolver",
    "ShiftInvert",
    "SpectrumError",
    "band_edges",
    "electron_count",
    "frame_spectrum",
    "kpm_moments",
    "sparse_bloch",
]
