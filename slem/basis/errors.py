"""Errors raised while generating a basis; all are ValueErrors whose message names the fix."""

from __future__ import annotations


class BasisGenerationError(ValueError):
    """The basis cannot be generated from this pseudopotential with these settings."""


class MissingAtomDataError(BasisGenerationError):
    """The UPF lacks the pseudo-wavefunctions or occupations needed to screen the pseudo-atom."""


class RadiusTooSmallError(BasisGenerationError):
    """A confinement radius is too small for the orbital to be bound."""


class ScfNotConvergedError(BasisGenerationError):
    """The self-consistent pseudo-atom did not converge."""
