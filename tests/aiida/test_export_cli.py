"""``aiida-slem export`` onto a full disk and into a folder that holds files (issue #18, item 9)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from aiida_slem.cli.main import cli


def _export(pk: int, output) -> object:
    return CliRunner().invoke(
        cli, ["export", str(pk), "--format", "deeptb", "-o", str(output)], prog_name="aiida-slem"
    )


def test_export_onto_a_full_disk_leaves_no_folder(full_disk, si64_dataset):
    folder, subprocess_only = full_disk
    if subprocess_only:
        pytest.skip("the export runs in this process: it needs the tmpfs, which only root may mount")
    result = _export(si64_dataset.pk, folder / "dptb")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aiida-slem export: cannot write: No space left on device")
    assert "choose another output path" in lines[0]
    assert os.listdir(folder) == []  # not a DeePTB folder with fewer frames that imports without a word


def test_export_refuses_a_folder_that_holds_files(si64_dataset, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = _export(si64_dataset.pk, tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"aiida-slem export: {tmp_path / 'out'} exists and is not an empty folder; choose a new output "
        "folder or remove it"
    )
    assert os.listdir(tmp_path / "out") == ["notes.txt"]
