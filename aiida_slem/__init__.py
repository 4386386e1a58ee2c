"""AiiDA plugin of aiida-slem: data nodes, CalcJobs, parsers, WorkChains and the command line."""

from slem import __version__

__all__ = ["__version__"]
