"""The layering of the code, checked on the source (an import-linter contract as a test) and by importing.

Layers, lowest first: ``slem`` (compute library, no AiiDA) < ``aiida_slem.data`` < ``aiida_slem.calcjobs`` and
``aiida_slem.parsers`` < ``aiida_slem.workflows``; ``aiida_slem.cli`` is imported by nothing but itself.
Every import statement counts, including the ones inside functions, and ``importlib.import_module("...")``
with a literal name.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# source folder -> installed package (setup.py maps the plugin folders into aiida_slem)
PACKAGES = {
    "slem": "slem",
    "aiida_slem": "aiida_slem",
    "calcjobs": "aiida_slem.calcjobs",
    "parsers": "aiida_slem.parsers",
    "workflows": "aiida_slem.workflows",
}
# scripts beside the packages that use them
SCRIPTS = {"submit_pipeline.py": "submit_pipeline", "benchmarks": "benchmarks"}


def _module_name(path: Path, folder: str, package: str) -> str:
    parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _sources() -> dict[str, Path]:
    """Installed module name -> source file, for every package and script."""
    modules = {}
    for folder, package in {**PACKAGES, **SCRIPTS}.items():
        root = ROOT / folder
        for path in [root] if root.is_file() else sorted(root.rglob("*.py")):
            if "site-packages" in path.parts:  # a local venv, e.g. benchmarks/_deeptb_venv (gitignored)
                continue
            if folder.endswith(".py"):
                modules[package] = path
            else:
                modules[_module_name(path, folder, package)] = path
    return modules


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported name) of every import in the file; ``from a import b`` gives both a and a.b, since
    b may be a submodule. Bare ``calcjobs``/``parsers``/``workflows`` (the source folders) are mapped to
    their installed names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    mapped = []
    for line, name in found:
        top = name.split(".")[0]
        if top in ("calcjobs", "parsers", "workflows"):
            name = f"aiida_slem.{name}"
        mapped.append((line, name))
    return mapped


# what runs in the AiiDA daemon (process steps, calcfunctions, parsers, validators) and what it must not
# import: Bloch sums, eigen-solves, models and plots run as `slem ...` commands on the compute node. From
# slem.evaluate the daemon takes only the k-point choice (geometry) and the settings schema.
DAEMON = ["aiida_slem.data", "aiida_slem.calcjobs", "aiida_slem.parsers", "aiida_slem.workflows"]
NUMERICS = [
    "matplotlib",
    "torch",
    "e3nn",
    "slem.bands.bloch",
    "slem.spectrum",
    # the model's compute modules; slem.model.config is the torch-free schema the submission check uses
    *(f"slem.model.{path.stem}" for path in sorted((ROOT / "slem" / "model").glob("*.py"))
      if path.stem not in ("__init__", "config")),
    "slem.predict",
    "slem.projection.project",
    *(f"slem.evaluate.{name}" for name in ("compare", "bands", "blocks", "matching", "metals", "plots")),
    *(f"slem.evaluate.{name}" for name in ("splits", "summary")),
]
# calls that mean dense linear algebra, Bloch sums or plotting, whatever module they come from
NUMERIC_CALLS = {
    "eig",
    "eigh",
    "eigvals",
    "eigvalsh",
    "eigsh",
    "generalized_eigvalsh",
    "bloch_matrices",
    "band_energies",
    "compare",
    "savefig",
    "subplots",
}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


CONTRACTS = [
    # (what, importers, forbidden imports)
    ("the compute library never imports AiiDA or the plugin", ["slem"], ["aiida", "aiida_*", "aiida_slem"]),
    (
        "data nodes do not depend on calcjobs, parsers, workflows or the command line",
        ["aiida_slem.data"],
        ["aiida_slem.calcjobs", "aiida_slem.parsers", "aiida_slem.workflows", "aiida_slem.cli"],
    ),
    (
        "calcjobs and parsers do not depend on workflows",
        ["aiida_slem.calcjobs", "aiida_slem.parsers"],
        ["aiida_slem.workflows"],
    ),
    (
        "the daemon's code (data nodes, calcjobs, parsers, workflows) imports no numerics of slem",
        DAEMON,
        NUMERICS,
    ),
]


def _forbidden(name: str, patterns: list[str]) -> bool:
    top = name.split(".")[0]
    return any(
        top.startswith(pattern[:-1]) if pattern.endswith("*") else _within(name, pattern)
        for pattern in patterns
    )


def _violations(importers: list[str], patterns: list[str], exempt: str | None = None) -> list[str]:
    out = []
    for module, path in _sources().items():
        if not any(_within(module, importer) for importer in importers):
            continue
        if exempt and _within(module, exempt):
            continue
        for line, name in imports_of(module, path):
            if _forbidden(name, patterns):
                out.append(f"{path.relative_to(ROOT)}:{line} ({module}) imports {name}")
    return sorted(set(out))


def test_the_sources_are_found():
    modules = _sources()
    for expected in ("slem.cli.main", "aiida_slem.data.dataset", "aiida_slem.calcjobs.train",
                     "aiida_slem.parsers.train", "aiida_slem.workflows.pipeline", "aiida_slem.cli.main"):
        assert expected in modules, expected


def test_resolves_relative_and_bare_folder_imports(tmp_path):
    path = tmp_path / "x.py"
    path.write_text(
        "from . import train\nfrom ..workflows import pipeline\nimport workflows.train\n"
        "def f():\n    import importlib\n    importlib.import_module('aiida.orm')\n"
    )
    names = [name for _, name in imports_of("aiida_slem.calcjobs.x", path)]
    assert "aiida_slem.calcjobs.train" in names
    assert "aiida_slem.workflows.pipeline" in names
    assert "aiida_slem.workflows.train" in names
    assert "aiida.orm" in names
    assert _forbidden("aiida_pseudo.data", ["aiida_*"]) and not _forbidden("slem.data", ["aiida_*"])


@pytest.mark.parametrize("what, importers, patterns", CONTRACTS, ids=[c[0] for c in CONTRACTS])
def test_layer_contract(what, importers, patterns):
    violations = _violations(importers, patterns)
    assert not violations, f"{what}:\n" + "\n".join(violations)


def test_only_the_command_line_imports_the_command_line():
    everything = list(PACKAGES.values()) + list(SCRIPTS.values())
    violations = _violations(everything, ["aiida_slem.cli"], exempt="aiida_slem.cli")
    assert not violations, "aiida_slem.cli is imported from outside it:\n" + "\n".join(violations)


def test_importing_every_slem_module_loads_no_aiida():
    """Walk the whole package (not only its entry points), in a fresh interpreter."""
    code = """
import importlib, pkgutil, sys
import slem
names = ["slem"] + [m.name for m in pkgutil.walk_packages(slem.__path__, "slem.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m == "aiida" or m.startswith(("aiida.", "aiida_")))
assert not loaded, f"importing the slem modules loaded {loaded[:10]}"
assert len(names) > 50, names
print(len(names))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((ROOT / "slem").rglob("*.py"))) == int(result.stdout.split()[-1])


def test_no_eigen_solve_bloch_sum_or_plot_is_called_in_the_daemon():
    """No call to an eigen-solver, a Bloch sum or matplotlib in any module the daemon runs."""
    calls = []
    for module, path in _sources().items():
        if not any(_within(module, package) for package in DAEMON):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name in NUMERIC_CALLS:
                    calls.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {name}")
    assert not calls, "\n".join(calls)


def test_importing_the_daemon_code_loads_no_numerics():
    """Every data, calcjob, parser and workflow module, imported in a fresh interpreter."""
    code = f"""
import importlib, pkgutil, sys
for package in {DAEMON!r}:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
forbidden = {NUMERICS!r}
loaded = sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
assert not loaded, f"the daemon's modules loaded {{loaded}}"
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_submission_check_of_a_training_config_loads_no_torch():
    """The CalcJob's validator runs in the daemon: it checks the model section without building a model."""
    code = """
import sys
from aiida_slem.calcjobs.train import check_config
message = check_config({"model": {"n_layers": "three"}, "training": {"max_steps": 1}}, validation=False)
assert message == "invalid training config:\\n  - 'model.n_layers' must be int, got 'three' (str)", message
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "e3nn", "matplotlib"))
assert not loaded, loaded[:5]
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
