"""The error every refusal of ``slem project`` raises."""


class ProjectionError(ValueError):
    """The inputs of a projection are inconsistent or describe an unsupported calculation."""
