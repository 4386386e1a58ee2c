"""A file object for HDF5 that never reports a full disk to HDF5.

HDF5 does not survive a failed write: with its own POSIX driver, or with a Python file object that raises,
ENOSPC surfaces inside h5py's deallocators as "Can't decrement id ref count", and the process then dies
with a segfault (measured on a 64 kB tmpfs: ``slem predict`` and ``slem export`` both did), skipping every
clean-up. So this sink accepts each write: to the file while the disk takes it, to memory once it does not,
and keeps the first error. HDF5 finishes with a consistent view of its file, and the caller raises that
error afterwards (:func:`slem.atomic.atomic_h5`), where the temporary file is removed.
"""

from __future__ import annotations

import errno
import io
import os

# out of room: the data has nowhere to go, which the user fixes; anything else is a bug to raise at once
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullSink(io.RawIOBase):
    """Seekable read/write file for ``h5py.File(sink, "w")``; ``error`` holds the first failed write."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._pos = 0
        self._size = 0
        self.error: OSError | None = None
        self._spilled: list[tuple[int, bytes]] = []  # (offset, data) written after the disk was full

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += os.pwrite(self._fd, view[done:], self._pos + done)
            except OSError as exc:
                if exc.errno not in FULL_ERRNOS:
                    raise
                self.error = exc
        if done < len(view):
            self._spilled.append((self._pos + done, bytes(view[done:])))
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        got = os.preadv(self._fd, [view[:n]], self._pos) if n else 0
        view[got:n] = bytes(n - got)  # a hole, or bytes that only reached memory
        for offset, data in self._spilled:  # in write order, so later writes win
            lo, hi = max(offset, self._pos), min(offset + len(data), self._pos + n)
            if lo < hi:
                view[lo - self._pos : hi - self._pos] = data[lo - offset : hi - offset]
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            os.ftruncate(self._fd, size)
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
