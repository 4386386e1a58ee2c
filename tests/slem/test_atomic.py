"""slem.atomic: the one atomic-write helper, and that every writer in the repository uses it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from slem.atomic import atomic_open, atomic_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def _mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def test_atomic_open_writes_with_the_mode_a_plain_open_gives(tmp_path, umask_027):
    target = tmp_path / "sub" / "summary.json"
    with atomic_open(target) as handle:
        handle.write('{"ok": true}')
        assert not target.exists()  # nothing is visible under the final name before the end
    assert target.read_text() == '{"ok": true}'
    assert _mode(target) == 0o666 & ~umask_027 == 0o640  # not mkstemp's 0600
    assert os.listdir(target.parent) == ["summary.json"]


def test_atomic_path_gives_h5py_a_path_and_replaces_an_existing_file(tmp_path, umask_027):
    target = tmp_path / "frames.h5"
    target.write_text("old")
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as handle:
        assert tmp.parent == tmp_path and tmp.name.startswith(".frames.h5.") and tmp.suffix == ".tmp"
        handle["x"] = np.arange(3)
    with h5py.File(target, "r") as handle:
        assert handle["x"][()].tolist() == [0, 1, 2]
    assert _mode(target) == 0o640
    assert os.listdir(tmp_path) == ["frames.h5"]


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path, exception):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    with pytest.raises(exception), atomic_open(target, "wb") as handle:
        handle.write(b"half of the new")
        raise exception
    assert target.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_an_exception_creates_no_target(tmp_path):
    with pytest.raises(ValueError, match="boom"), atomic_path(tmp_path / "new.h5") as tmp:
        tmp.write_text("partial")
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


def test_atomic_open_refuses_append_and_read_modes(tmp_path):
    for mode in ("a", "r", "r+b"):
        with pytest.raises(ValueError, match="mode must start with 'w'"), atomic_open(tmp_path / "x", mode):
            pass
    assert os.listdir(tmp_path) == []


def test_no_module_renames_files_outside_the_helper():
    """A second copy of the idiom is how the three behaviours (mode, fsync, clean-up) came about."""
    pattern = re.compile(r"\bmkstemp\(|\bos\.replace\(|\bos\.rename\(|NamedTemporaryFile\(")
    offenders = []
    for folder in ("slem", "aiida_slem", "calcjobs", "parsers", "workflows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "slem/atomic.py":
                continue
            lines = enumerate(path.read_text().splitlines(), 1)
            offenders += [f"{rel}:{n}" for n, line in lines if pattern.search(line)]
    assert offenders == [], "write through slem.atomic.atomic_path/atomic_open instead"


def test_no_module_writes_hdf5_outside_the_helper():
    """HDF5 written through its own driver segfaults on a full disk (slem/h5_sink.py): use atomic_h5."""
    pattern = re.compile(r"""h5py\.File\([^)]*["'][wax]""")
    offenders = []
    for folder in ("slem", "aiida_slem", "calcjobs", "parsers", "workflows"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ("slem/atomic.py", "slem/h5_sink.py"):
                continue
            offenders += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                          if pattern.search(line)]
    assert offenders == [], "write HDF5 through slem.atomic.atomic_h5 instead"
