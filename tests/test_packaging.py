"""A wheel install maps the plugin folders into aiida_slem.* and puts nothing generic in site-packages."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # a stale build/lib would leak old files into the wheel
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("aiida_slem-*.whl")
    return path


def test_wheel_layout(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"slem", "aiida_slem"} <= tops
    assert not tops & {"calcjobs", "parsers", "workflows", "tests", "benchmarks"}, tops
    assert "aiida_slem/calcjobs/__init__.py" in names
    assert "aiida_slem/workflows/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[aiida.calculations]" in text and "slem.project" in text


def test_wheel_imports(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import aiida_slem.calcjobs, aiida_slem.parsers, aiida_slem.workflows, slem, slem.data;"
        "print(aiida_slem.calcjobs.__file__); print(slem.__file__)"
    )
    # -S skips .pth files, so the editable install's import hook cannot shadow the wheel's copy;
    # the dependencies still come from site-packages, after the wheel.
    search_path = ":".join([str(tmp_path), *site.getsitepackages()])
    result = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": search_path},
        cwd=tmp_path,
        check=True,
    )
    for line in result.stdout.split():
        assert line.startswith(str(tmp_path)), f"imported {line} instead of the wheel's copy"


def test_editable_install_maps_plugin_dirs():
    import aiida_slem.calcjobs
    import aiida_slem.workflows

    assert Path(aiida_slem.calcjobs.__file__).parent == ROOT / "calcjobs"
    assert Path(aiida_slem.workflows.__file__).parent == ROOT / "workflows"



def test_no_script_folder_module_shadows_the_standard_library():
    """A script's own folder comes first on sys.path: benchmarks/threading.py once replaced the standard
    library's threading for every benchmark that imports torch in a fresh interpreter."""
    root = Path(__file__).resolve().parents[1]
    for folder in ("benchmarks", "scripts", "tests/data"):
        names = {path.stem for path in (root / folder).glob("*.py")}
        assert not names & sys.stdlib_module_names, (folder, sorted(names & sys.stdlib_module_names))


def test_test_modules_have_unique_basenames():
    """The test folders have no __init__.py, so pytest imports each module by its basename: two files of one
    name (tests/slem/test_x.py and tests/aiida/test_x.py) stop the whole-suite collection."""
    root = Path(__file__).resolve().parent
    names = [path.name for path in root.rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
