"""Shared behaviour of the file-backed slem nodes: one HDF5 (or model) file plus queryable attributes.

The daemon must never hold big arrays, so every node validates and summarises its file from
headers and shapes only; the arrays are read on demand through ``as_path()``.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Iterator
from contextlib import contextmanager

from aiida import orm


class SlemFileData(orm.SinglefileData):
    """A single file that is checked on construction and summarised into attributes."""

    DEFAULT_FILENAME = "data.h5"

    def __init__(self, file=None, filename: str | None = None, **kwargs) -> None:
        if file is not None and filename is None:
            filename = (
                pathlib.Path(file).name if isinstance(file, (str, pathlib.Path)) else self.DEFAULT_FILENAME
            )
        super().__init__(file, filename=filename, **kwargs)

    def set_file(self, file, filename: str | None = None) -> None:
        super().set_file(file, filename=filename)
        with self.local_path() as path:
            summary = self._inspect(path)
            self.base.attributes.set("sha256", sha256_of(path))
        for key, value in summary.items():
            self.base.attributes.set(key, value)

    def _inspect(self, path: pathlib.Path) -> dict:
        """Validate the file at ``path`` cheaply and return the attributes to store."""
        raise NotImplementedError

    @contextmanager
    def local_path(self) -> Iterator[pathlib.Path]:
        """A real filesystem path of the file (h5py needs one), valid inside the context."""
        with self.as_path() as path:
            yield pathlib.Path(path)

    @property
    def sha256(self) -> str:
        return self.base.attributes.get("sha256")


def sha256_of(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
