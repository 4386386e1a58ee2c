"""A full disk under ``slem predict`` and ``slem export`` (issue #18, item 9): one line, exit 1, nothing left.

The disk is the ``full_disk`` fixture (tests/conftest.py). Each command runs in its own process, because
the failure this guards against was a segfault in h5py.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from slem.atomic import atomic_h5
from slem.data.deeptb import write_deeptb
from slem.data.frame import read_frames
from slem.h5_sink import DiskFullSink

SI8 = Path(__file__).parents[1] / "data" / "si8_frames.h5"


def _slem(extra: dict, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "slem.cli.main", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, **extra)


def _failed_cleanly(result: subprocess.CompletedProcess, command: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # not -11 (SIGSEGV)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("predicted structure")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"slem {command}: cannot write: ")
    assert "No space left on device" in lines[0] or "File too large" in lines[0]
    assert "choose another output path" in lines[0]


@pytest.mark.parametrize("fmt", ["slem", "deeptb"])
def test_predict_onto_a_full_disk(full_disk, si8_model_path, fmt):
    folder, extra = full_disk
    output = folder / "out"
    result = _slem(extra, "predict", si8_model_path, SI8, "-o", output, "--format", fmt, "--threads", 1)
    _failed_cleanly(result, "predict")
    assert os.listdir(folder) == []  # no .tmp file, no half-written folder


@pytest.mark.parametrize("fmt", ["deeptb", "deeph"])
def test_export_onto_a_full_disk(full_disk, fmt):
    folder, extra = full_disk
    _failed_cleanly(_slem(extra, "export", SI8, "--format", fmt, "-o", folder / "out"), "export")
    assert os.listdir(folder) == []


def test_import_onto_a_full_disk_keeps_the_previous_file(full_disk, tmp_path):
    folder, extra = full_disk
    write_deeptb(read_frames(SI8), tmp_path / "dptb")
    previous = folder / "frames.h5"
    previous.write_bytes(b"the previous file")
    result = _slem(extra, "export", "--import-from", "deeptb", tmp_path / "dptb", "-o", previous)
    _failed_cleanly(result, "export")
    assert os.listdir(folder) == ["frames.h5"]
    assert previous.read_bytes() == b"the previous file"


def test_export_refuses_a_folder_that_holds_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = _slem({}, "export", SI8, "--format", "deeptb", "-o", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"slem export: {tmp_path / 'out'} exists and is not an empty folder; choose a new output folder or "
        "remove it"
    ]
    assert os.listdir(tmp_path / "out") == ["notes.txt"]


def _failing_pwrite(after: int):
    """os.pwrite that fails with ENOSPC from its ``after``-th call on, as a disk filling mid-file does."""
    real, calls = os.pwrite, [0]

    def pwrite(fd, data, offset):
        calls[0] += 1
        if calls[0] > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    return pwrite


def test_the_sink_gives_hdf5_a_consistent_file_after_the_disk_fills(tmp_path, monkeypatch):
    """HDF5 reads back what it wrote after the failure, and the error is raised once HDF5 has closed."""
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(after=3))
    sink = DiskFullSink(tmp_path / "x.h5")
    with h5py.File(sink, "w") as handle:
        handle["a"] = np.arange(10_000.0)
        handle.flush()
        np.testing.assert_array_equal(handle["a"][()], np.arange(10_000.0))  # read from memory
    assert sink.error is not None and sink.error.errno == errno.ENOSPC
    sink.close()


def test_atomic_h5_raises_the_full_disk_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "pwrite", _failing_pwrite(after=2))
    with pytest.raises(OSError, match="No space left on device"), atomic_h5(tmp_path / "x.h5") as handle:
        for k in range(50):
            handle[str(k)] = np.arange(1000.0)
    assert os.listdir(tmp_path) == []
