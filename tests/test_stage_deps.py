"""No stage can go stale: every project module a stage's command imports is one of its DVC deps.

The command of each stage in dvc.yaml runs stages/<name>.py, which calls `sinernn.cli.main` with
the job's name; cli runs `jobs.<name>_job`. From there the imports are followed transitively:
inside jobs.py only the job's own function (its local imports, the helpers it calls, and jobs.py's
module-level imports), in every other module all of its imports, wherever they are written.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sinernn"


def _module_file(name: str) -> Path | None:
    path = ROOT / (name.replace(".", "/") + ".py")
    return path if path.exists() else None


def _imports(nodes) -> set[str]:
    """Project modules named by the import statements among `nodes` (and everything under them)."""
    found = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found |= {alias.name for alias in sub.names if alias.name.startswith(PACKAGE)}
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith(PACKAGE):
                found.add(sub.module)
                # `from sinernn import data` imports the module sinernn.data
                found |= {f"{sub.module}.{alias.name}" for alias in sub.names
                          if _module_file(f"{sub.module}.{alias.name}")}
    return {name for name in found if _module_file(name)}


def _closure(modules: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += _imports([ast.parse(_module_file(name).read_text())]) - seen
    return seen


def _job_modules(job: str) -> set[str]:
    """jobs.py's module-level imports, plus what the job function and the jobs.py helpers it
    calls import."""
    tree = ast.parse((ROOT / "sinernn/jobs.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    reached, todo = set(), [job]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo += [call.func.id for call in ast.walk(functions[name])
                 if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in functions]
    return _imports(top_level + [functions[name] for name in reached])


def stage_modules(stage_name: str) -> set[str]:
    """The project modules the stage's command imports, as files relative to the repository."""
    script = ROOT / "stages" / f"{stage_name}.py"
    assert _imports([ast.parse(script.read_text())]) == {"sinernn.cli"}, f"{script} should only call sinernn.cli"
    # cli.py imports at module level what every command needs; the job's function brings the rest.
    # (plus what its helper for this command imports, e.g. _diagnose)
    cli_tree = ast.parse((ROOT / "sinernn/cli.py").read_text())
    helpers = [node for node in cli_tree.body if isinstance(node, ast.FunctionDef) and node.name == f"_{stage_name}"]
    modules = _closure(_imports([node for node in cli_tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
                                + helpers))
    modules |= {"sinernn.cli", "sinernn.jobs"} | _closure(_job_modules(f"{stage_name}_job"))
    return {name.replace(".", "/") + ".py" for name in modules}


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.faults(scenario="a module a stage imports edited; dvc.yaml misses it")
@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage, fault):
    deps = [str(dep) for dep in _stages()[stage]["deps"]]
    missing = sorted(path for path in stage_modules(stage) if not _covered(path, deps))
    fault.record("stale stages reported up to date", int(bool(missing)))
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not list them in its deps"


def test_the_analysis_sees_a_function_level_import():
    """The check itself: train's job imports the checkpoint module inside its function."""
    assert "sinernn/checkpoint.py" in stage_modules("train")
    assert "sinernn/tuning.py" in stage_modules("train")  # apply_tuned, imported in train_job
    assert "sinernn/registry.py" not in stage_modules("train")  # only register_job imports it
    assert "sinernn/diagnosis.py" in stage_modules("diagnose")  # also imported by cli._diagnose
