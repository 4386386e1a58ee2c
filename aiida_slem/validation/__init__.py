"""Pure numerics of the validation step (no AiiDA import): block errors, band errors, plots.

Kept free of AiiDA so that the same functions can run on a compute node as a ``slem`` subcommand.
"""

from .bands import band_errors, validation_kpoints
from .blocks import block_errors

__all__ = ["band_errors", "block_errors", "validation_kpoints"]
