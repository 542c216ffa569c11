"""The layers of sinernn, as `ls sinernn` shows them, and the direction of their imports.

    cli, commands, paths     the command line (stage scripts call sinernn.cli)
      parallel/              `sinernn repro -j N`: runs DVC's stages at once  -> core
      jobs/                  one module per stage or command: wires the layers below
        tune/                Optuna searches                  -> track, core
        answer/              the research answer              -> core
        track/, serving      MLflow: runs, registry, plots    -> core
          core/              data, framing, models, training, evaluation, params: no MLflow, no Optuna
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sinernn"

# What each layer may import from sinernn (besides itself).
ALLOWED = {
    "core": set(),
    "track": {"core"},
    "answer": {"core"},
    "tune": {"core", "track"},
    "jobs": {"core", "track", "answer", "tune"},
    "parallel": {"core"},
    "cli": {"core", "track", "answer", "tune", "jobs", "parallel"},
}
NOT_IN_CORE = ("mlflow", "optuna", "matplotlib", "dvc")  # (sqlalchemy parses storage URLs: core.secrets)


def layer_of(module: str) -> str:
    """sinernn.core.data -> core; sinernn.serving -> track (the MLflow loader; see its comment)."""
    parts = module.split(".")
    if parts[1] in ALLOWED:
        return parts[1]
    return {"serving": "track", "cli": "cli", "commands": "cli", "paths": "cli"}[parts[1]]


def _modules() -> dict[str, Path]:
    return {".".join(path.relative_to(ROOT).with_suffix("").parts): path
            for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level ones too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _project_imports(path: Path) -> set[str]:
    modules = _modules()
    return {name for name in _imports(path) if name in modules}


def violations(module: str, path: Path) -> list[str]:
    """The sinernn modules that `path` (the file of `module`) imports against the layers."""
    layer = layer_of(module)
    return sorted(name for name in _project_imports(path)
                  if layer_of(name) != layer and layer_of(name) not in ALLOWED[layer]
                  or layer == "jobs" and layer_of(name) == "jobs")  # a job never imports another job


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_point_down_the_layers(module):
    wrong = violations(module, _modules()[module])
    layer = layer_of(module)
    assert not wrong, f"{module} ({layer}) imports {wrong}: {layer} may import {sorted(ALLOWED[layer]) or 'nothing'}"


def test_only_the_command_line_imports_a_job():
    importers = sorted(module for module, path in _modules().items()
                       if layer_of(module) != "cli" and any(layer_of(name) == "jobs" for name in _project_imports(path)))
    assert importers == []


@pytest.mark.parametrize("module", sorted(m for m in _modules() if layer_of(m) == "core"))
def test_the_core_knows_nothing_of_mlflow_or_optuna(module):
    used = sorted(name for name in _imports(_modules()[module]) if name.split(".")[0] in NOT_IN_CORE)
    assert not used, f"{module} imports {used}"


@pytest.mark.parametrize("init", sorted(PACKAGE.rglob("__init__.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_package_init_holds_its_docstring_only(init):
    """No logic in __init__ (and so no DVC dependency on it: tests/test_stage_deps.py)."""
    body = ast.parse(init.read_text()).body
    assert all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


@pytest.mark.parametrize("layer, line", [
    ("core", "from sinernn.track import registry"),  # the core reaching up to MLflow
    ("track", "from sinernn.tune.space import suggest"),
    ("answer", "import sinernn.tune.study"),
    ("jobs", "from sinernn.jobs.train import train_job"),  # one job importing another
])
def test_the_check_sees_a_wrong_import_even_inside_a_function(layer, line, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(f"def f():\n    {line}\n")
    assert violations(f"sinernn.{layer}.bad", bad) != []
    bad.write_text("def f():\n    from sinernn.core import data\n")
    assert violations(f"sinernn.{layer}.bad", bad) == []


ON_PURPOSE = "Over 300 lines on purpose"  # a module's docstring says why it is one file
LONG_FUNCTION = "# Long on purpose:"  # a comment inside a function says why it is one function


def sizes(path: Path) -> list[str]:
    """What in `path` is over ~300 lines (a module) or ~60 lines (a function) with no reason given."""
    source = path.read_text()
    tree = ast.parse(source)
    found = []
    if len(source.splitlines()) > 300 and ON_PURPOSE not in (ast.get_docstring(tree) or ""):
        found.append(f"{path.name}: {len(source.splitlines())} lines")
    lines = source.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
            if not any(LONG_FUNCTION in line for line in lines[node.lineno - 1 : node.end_lineno]):
                found.append(f"{path.name}: {node.name} has {node.end_lineno - node.lineno + 1} lines")
    return found


def test_no_module_over_300_lines_and_no_function_over_60_without_a_reason():
    assert [problem for path in sorted(PACKAGE.rglob("*.py")) for problem in sizes(path)] == []


def test_the_size_check_sees_a_long_function(tmp_path):
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 70)
    assert sizes(long) == ["long.py: f has 71 lines"]
    long.write_text("def f():\n    # Long on purpose: one loop\n" + "    x = 1\n" * 70)
    assert sizes(long) == []


def test_an_install_ships_every_package():
    """A wheel or `pip install .` (not only the editable install) holds every layer."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(find_packages(str(ROOT), include=config["include"]))
    packages = {".".join(init.parent.relative_to(ROOT).parts) for init in PACKAGE.rglob("__init__.py")}
    assert packages <= shipped and {"sinernn.core", "sinernn.jobs"} <= packages
