"""slem: compute-side library of aiida-slem (QE readers, basis, projection, data, SLEM model).

This package never imports aiida, so it runs on any compute node or laptop.
"""

__version__ = "0.1.0"
