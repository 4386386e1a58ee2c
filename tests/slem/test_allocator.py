"""slem.allocator: the slem command keeps freed memory in the heap, and lets the user opt out.

Each case runs in a fresh interpreter, since malloc settings are per process and cannot be undone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from slem.allocator import ENV_OPT_OUT, GLIBC_ENV

PROBE = "from slem.allocator import keep_freed_memory; print(keep_freed_memory())"


def _is_glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a glibc system
        return False


GLIBC = sys.platform.startswith("linux") and _is_glibc()


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_OPT_OUT, *GLIBC_ENV)}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                            env={**clean, **env}, timeout=120)
    return result.stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_thresholds_set_on_glibc():
    assert _probe() == "True"


def test_opt_out_and_user_settings_are_respected():
    assert _probe(SLEM_SYSTEM_MALLOC="1") == "False"
    assert _probe(MALLOC_TRIM_THRESHOLD_="1000000") == "False"
    assert _probe(SLEM_SYSTEM_MALLOC="0") == str(GLIBC)


def test_the_slem_command_sets_them(monkeypatch):
    """The group callback runs before every subcommand, so each heavy step gets the setting."""
    from click.testing import CliRunner

    import slem.cli.main as main

    calls = []
    monkeypatch.setattr(main, "keep_freed_memory", lambda: calls.append(True) or True)
    result = CliRunner().invoke(main.cli, ["export", "--help"])
    assert result.exit_code == 0, result.output
    assert calls == [True]
