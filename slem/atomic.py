"""The one way slem writes a file that someone else may read while it is being written.

A temporary file next to the target (same folder, so same file system and the rename is atomic), written,
fsynced, given the mode a plain ``open`` would give a new file, then renamed over the target. On any
exception, including KeyboardInterrupt and a walltime signal, the temporary file is removed and the
target is left as it was. Every writer in the project goes through :func:`atomic_path` or
:func:`atomic_open`; ``tests/slem/test_atomic.py`` checks that no other module renames files itself.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_path"]


def _new_file_mode() -> int:
    # mkstemp creates 0600, which hides frames, models and checkpoints from the group that shares a
    # project folder; a plain open() would give 0666 minus the umask. The umask can only be read by
    # setting it, so it is set back at once.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to (h5py, torch.save, ...); publish it on success.

    The writer must have closed the file when the ``with`` block ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # Reopened because writers such as h5py close their own handle; without the fsync a crash
        # soon after the rename can leave an empty or truncated file under the final name.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode)`` for writing, through :func:`atomic_path`: the target changes only on success."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a whole new file; mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
