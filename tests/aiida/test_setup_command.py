"""`aiida-slem setup` on a machine without a profile, run twice: the second run changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _run(args: list[str], aiida_path: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIIDA_PATH": str(aiida_path)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pw.x") is None, reason="Quantum ESPRESSO is not installed")
def test_setup_is_idempotent_and_complete(tmp_path):
    first = _run(["aiida-slem", "setup"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "profile aiida-slem" in first.stdout and "created" in first.stdout
    second = _run(["aiida-slem", "setup"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert " created " not in second.stdout and " updated " not in second.stdout, second.stdout

    status = _run(["verdi", "status", "--no-rmq"], tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    codes = _run(["verdi", "code", "list"], tmp_path).stdout
    for label in ("pw@localhost", "pp@localhost", "projwfc@localhost", "slem@localhost"):
        assert label in codes
    families = _run(["aiida-pseudo", "list"], tmp_path).stdout
    assert "SLEM/NC/PBE/Debian" in families


def test_setup_without_quantum_espresso_says_what_to_install(tmp_path):
    bindir = Path(shutil.which("aiida-slem")).parent
    result = _run(
        [str(bindir / "aiida-slem"), "setup"], tmp_path, path=str(bindir)
    )  # /bin is /usr/bin on Debian: keep it out
    assert result.returncode != 0
    assert "apt-get install quantum-espresso quantum-espresso-data" in result.stderr
    assert (
        not (tmp_path / ".aiida").exists()
        or "profiles" not in (tmp_path / ".aiida" / "config.json").read_text()
    )


def test_plugin_entry_points_are_registered():
    from aiida.plugins.entry_point import get_entry_point_names

    assert {"slem.project", "slem.basis"} <= set(get_entry_point_names("aiida.calculations"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pw.x") is None, reason="Quantum ESPRESSO is not installed")
def test_setup_pseudo_dir_refuses_a_truncated_copy_then_installs_and_records_the_family(tmp_path):
    dojo = Path(__file__).resolve().parents[1] / "data" / "pseudos" / "pseudodojo-nlcc"
    broken = tmp_path / "broken"
    shutil.copytree(dojo, broken)
    text = (broken / "Ga-d.upf").read_text()
    (broken / "Ga-d.upf").write_text(text[: len(text) // 2])
    refused = _run(["aiida-slem", "setup", "--pseudo-dir", str(broken)], tmp_path)
    assert refused.returncode != 0 and "Ga-d.upf ends before </UPF>" in refused.stderr
    assert "Nothing was installed" in refused.stderr and not (tmp_path / ".aiida" / "config.json").exists()

    label = "PseudoDojo/test"
    first = _run(["aiida-slem", "setup", "--pseudo-dir", str(dojo), "--family-label", label], tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"pseudo family {label}" in first.stdout and "28/112" in first.stdout  # Si low: 14 Ha
    second = _run(["aiida-slem", "setup", "--pseudo-dir", str(dojo), "--family-label", label], tmp_path)
    assert second.returncode == 0 and " created " not in second.stdout and " updated " not in second.stdout
    # the family holds these very files, screened when it was installed: a rerun does not screen again
    assert "screening" in first.stdout and "screening" not in second.stdout
    assert f"7 UPFs as in {label} (screened when it was installed)" in second.stdout
    code = "from aiida import load_profile; load_profile(); "
    code += "from aiida_slem.pseudos import default_family_label; "
    shown = _run([sys.executable, "-c", code + "print(default_family_label())"], tmp_path)
    assert shown.stdout.strip() == label, shown.stdout + shown.stderr
