"""Fixtures both test trees use; nothing here imports aiida or torch."""

from __future__ import annotations

import resource
import signal
import subprocess

import pytest

DISK = 64 * 1024  # smaller than every output the full-disk tests write
FILE_LIMIT = 4096  # smaller than each file of a DeePTB folder


@pytest.fixture
def full_disk(tmp_path):
    """(folder, extra subprocess arguments): a command run with them cannot write its output in folder.

    A 64 kB tmpfs where the test may mount one (root, as in CI's container): then the folder is full for
    this process too. Elsewhere a 4 kB file-size limit for the subprocess, whose writes then fail with
    EFBIG instead of ENOSPC; the extra arguments are empty when the folder itself is full."""
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        command = ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)]
        mounted = subprocess.run(command, capture_output=True).returncode == 0
    except FileNotFoundError:  # no mount(8)
        mounted = False
    if mounted:
        yield mount, {}
        subprocess.run(["umount", str(mount)], check=True)
        return

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    yield mount, {"preexec_fn": limit_file_size}
