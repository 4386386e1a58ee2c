"""The one way slem writes a file that someone else may read while it is being written.

A temporary file next to the target (same folder, so same file system and the rename is atomic), written,
fsynced, given the mode a plain ``open`` would give a new file, then renamed over the target. On any
exception, including KeyboardInterrupt and a walltime signal, the temporary file is removed and the
target is left as it was. Every writer in the project goes through :func:`atomic_path`,
:func:`atomic_open`, :func:`atomic_h5` or :func:`atomic_folder`; ``tests/slem/test_atomic.py`` checks that no
other module renames files itself.

A full disk is the failure these must survive: :func:`atomic_h5` gives HDF5 a file object that absorbs the
failed write (slem/h5_sink.py) and raises it as a plain ``OSError`` once HDF5 has closed the file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutputExistsError", "atomic_folder", "atomic_h5", "atomic_open", "atomic_path", "check_new_folder",
    "check_room",
]


class OutputExistsError(FileExistsError):
    """The output folder already holds files; the message names it and the fix."""


def _new_mode(full: int = 0o666) -> int:
    # mkstemp creates 0600 (mkdtemp 0700), which hides frames, models and checkpoints from the group that
    # shares a project folder; a plain open() or mkdir() would give 0666 (0777) minus the umask. The umask
    # can only be read by setting it, so it is set back at once.
    umask = os.umask(0)
    os.umask(umask)
    return full & ~umask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        _fsync(tmp)
        os.chmod(tmp, _new_mode())
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


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, in_memory: bool = False) -> Iterator[Any]:
    """An ``h5py.File`` open for writing, published at ``path`` only when the ``with`` block succeeds.

    A full disk raises ``OSError`` (ENOSPC) when the block ends, or earlier from :func:`check_room`, and
    leaves nothing behind; HDF5 itself never sees the failed write (slem/h5_sink.py says why).
    ``in_memory``: HDF5 builds the file in its own memory driver and it is written in one go, which is
    1.6x faster for files of thousands of small datasets (DeePTB/DeepH blocks) but holds the whole file;
    a stream of frames of unknown total size goes through the sink instead."""
    import h5py  # slem.atomic is imported by writers that never touch HDF5

    from slem.h5_sink import DiskFullSink

    with atomic_path(path) as tmp:
        if in_memory:
            with h5py.File(tmp.name, "w", driver="core", backing_store=False) as handle:
                yield handle
                handle.flush()
                image = handle.id.get_file_image()
            with open(tmp, "wb") as out:
                out.write(image)
            return
        sink = DiskFullSink(tmp)
        try:
            with h5py.File(sink, "w") as handle:
                _SINKS[handle.id.id] = sink
                try:
                    yield handle
                finally:
                    _SINKS.pop(handle.id.id, None)
        finally:
            sink.close()
        if sink.error is not None:
            raise sink.error


_SINKS: dict[int, Any] = {}


def check_room(handle: Any) -> None:
    """Raise the full disk's error now if a write into ``handle`` (from :func:`atomic_h5`) already failed:
    a writer streaming many frames stops at the next one instead of holding the rest in memory."""
    sink = _SINKS.get(handle.id.id)
    if sink is not None and sink.error is not None:
        raise sink.error


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path`` to fill; it becomes ``path`` only on success.

    ``path`` must be absent or an empty folder: one with content may hold the user's own files, so it is
    refused rather than replaced. On failure the temporary folder goes and ``path`` is as it was, so a
    half-written export can never be read back later as a complete but shorter one."""
    path = check_new_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for folder, _, files in os.walk(tmp):
            for name in files:
                _fsync(Path(folder) / name)
        os.chmod(tmp, _new_mode(0o777))
        os.replace(tmp, path)  # over an empty folder too (POSIX rename)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_new_folder(path: str | os.PathLike) -> Path:
    """``path`` as a Path if :func:`atomic_folder` may create it; call it before the work that fills it."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise OutputExistsError(
            f"{path} exists and is not an empty folder; choose a new output folder or remove it"
        )
    return path
