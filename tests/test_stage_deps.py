"""No stage can go stale, and no stage re-runs for an edge module it does not use.

The command of each stage in dvc.yaml runs stages/<name>.py, which calls `sinernn.cli.main` with
the stage's name; the CLI runs that command's handler (sinernn/commands.py, `COMMANDS`), which
imports its job (sinernn/jobs/<name>.py). From there the imports are followed transitively:
inside commands.py only the handler (its local imports and the helpers it calls) and the
module-level imports, in every other module all of its imports, wherever they are written.
"""

from __future__ import annotations

import ast
import functools
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sinernn"


def _module_file(name: str) -> Path | None:
    for path in (ROOT / (name.replace(".", "/") + ".py"), ROOT / name.replace(".", "/") / "__init__.py"):
        if path.exists():
            return path
    return None


def _imports(nodes) -> set[str]:
    """Project modules named by the import statements among `nodes` (and everything under them)."""
    found = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Import):
                found |= {alias.name for alias in sub.names if alias.name.startswith(PACKAGE)}
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith(PACKAGE):
                found.add(sub.module)
                # `from sinernn.core import data` imports the module sinernn.core.data
                found |= {f"{sub.module}.{alias.name}" for alias in sub.names
                          if _module_file(f"{sub.module}.{alias.name}")}
    # importing sinernn.core.data runs sinernn/__init__.py and sinernn/core/__init__.py first
    found |= {".".join(name.split(".")[:i]) for name in found for i in range(1, name.count(".") + 1)}
    return {name for name in found if _module_file(name)}


def _closure(modules: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name == "sinernn.commands":
            continue  # a command runs its own handler only: _handler_modules
        todo += _imports([ast.parse(_module_file(name).read_text())]) - seen
    return seen


def _handler_name(command: str) -> str:
    """The handler that sinernn/commands.py's COMMANDS table gives `command`."""
    tree = ast.parse((ROOT / "sinernn/commands.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets))
    for entry in table.elts:
        if isinstance(entry.args[0], ast.Constant) and entry.args[0].value == command:
            return entry.args[3].id
    raise AssertionError(f"no command {command!r} in COMMANDS")


def _argument_builders() -> list[str]:
    """Every command's argument builder: build_parser() runs them all, whichever command runs."""
    tree = ast.parse((ROOT / "sinernn/commands.py").read_text())
    table = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets))
    return [entry.args[2].id for entry in table.elts]


def _handler_modules(command: str) -> set[str]:
    """commands.py's module-level imports, plus what the handler, every argument builder and the
    helpers they call import."""
    tree = ast.parse((ROOT / "sinernn/commands.py").read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    reached, todo = set(), [_handler_name(command), *_argument_builders()]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo += [call.func.id for call in ast.walk(functions[name])
                 if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in functions]
    return _imports(top_level + [functions[name] for name in reached])


def command_of(stage: str) -> tuple[str, list[str]]:
    """The `sinernn` command a stage runs (its script's name: stages/<command>.py) and its arguments."""
    words = shlex.split(_stages()[stage]["cmd"])
    assert words[0] == "python" and words[1].startswith("stages/"), f"stage {stage} runs {words[:2]}"
    return Path(words[1]).stem, words[2:]


def stage_modules(stage: str) -> set[str]:
    """The project modules the stage's command imports, as files relative to the repository."""
    command, arguments = command_of(stage)
    script = ROOT / "stages" / f"{command}.py"
    assert _imports([ast.parse(script.read_text())]) == {"sinernn", "sinernn.cli"}, \
        f"{script} should only call sinernn.cli"
    modules = {"sinernn.cli", "sinernn.commands"}
    modules |= _imports([ast.parse((ROOT / "sinernn/cli.py").read_text())])
    modules |= _handler_modules(command)
    if command == "measure":  # the measurement's own module, which the table names (measurements.py)
        from sinernn.answer.measurements import PARTS

        modules.add(PARTS[arguments[0]].module)
    return {str(_module_file(name).relative_to(ROOT)) for name in _closure(modules)}


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def _code_deps(stage: str) -> list[str]:
    return [str(dep) for dep in _stages()[stage]["deps"] if str(dep).startswith(PACKAGE)]


@pytest.mark.faults(scenario="a module a stage imports edited; dvc.yaml misses it")
@pytest.mark.parametrize("stage", sorted(_stages()))
def test_every_module_a_stage_imports_is_one_of_its_deps(stage, fault):
    # A package's __init__.py holds only its docstring (tests/test_layers.py), so it needs no dep.
    imported = {path for path in stage_modules(stage) if not path.endswith("__init__.py")}
    missing = sorted(path for path in imported if not _covered(path, _code_deps(stage)))
    fault.record("stale stages reported up to date", int(bool(missing)))
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not list them in its deps"


FOUNDATION = "sinernn/core"  # the one folder a stage depends on as a whole


def unused_deps(deps: list[str], imported: set[str]) -> list[str]:
    """Declared code deps the stage never imports: a file it does not import, or a folder other
    than the core (a folder would re-run the stage for every module in it)."""
    return [dep for dep in deps if dep != FOUNDATION and (not dep.endswith(".py") or dep not in imported)]


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_a_stage_depends_on_no_code_it_does_not_import(stage):
    """The other direction: editing a module re-runs exactly the stages that import it (the
    core excepted, which every stage imports in good part), and one job its own stage only."""
    assert unused_deps(_code_deps(stage), stage_modules(stage)) == []
    assert FOUNDATION in _code_deps(stage)
    assert [dep for dep in _code_deps(stage) if dep.startswith("sinernn/jobs")] == [f"sinernn/jobs/{command_of(stage)[0]}.py"]


def test_the_check_sees_a_dep_a_stage_does_not_use():
    """The check itself: the gate is no dep of train, nor is a whole edge package."""
    imported = stage_modules("train")
    assert "sinernn/track/gate.py" not in imported
    assert unused_deps(_code_deps("train"), imported) == []
    widened = _code_deps("train") + ["sinernn/track/gate.py", "sinernn/tune"]
    assert unused_deps(widened, imported) == ["sinernn/track/gate.py", "sinernn/tune"]


def test_the_analysis_sees_a_function_level_import():
    """The check itself: train's job imports the checkpoint module inside its function."""
    assert "sinernn/core/checkpoint.py" in stage_modules("train")
    assert "sinernn/core/tuned.py" in stage_modules("train")  # apply_tuned, imported in train_job
    assert "sinernn/track/gate.py" not in stage_modules("train")  # only register_job imports it
    assert "sinernn/jobs/evaluate.py" not in stage_modules("train")  # another stage's job
    assert "sinernn/answer/diagnosis.py" in stage_modules("diagnose")  # also imported by commands._diagnose


def test_the_architecture_page_counts_the_core_modules_stages_import():
    """docs/architecture.md says how much of the core the stages import: computed, not typed."""
    import re

    core = [p for p in (ROOT / "sinernn/core").glob("*.py") if p.name != "__init__.py"]
    used = [sum(m.startswith("sinernn/core/") and not m.endswith("__init__.py") for m in stage_modules(stage))
            for stage in _stages()]
    text = " ".join((ROOT / "docs/architecture.md").read_text().split())
    assert re.search(rf"\({min(used)} to {max(used)} of its {len(core)} modules\)", text)


def test_every_measurement_is_one_stage_whose_matrix_is_the_tables_items():
    """The measurement stages of dvc.yaml and the table of sinernn/answer/measurements.py name the
    same measurements and the same items (dvc.yaml cannot read the table, so a test holds them)."""
    from sinernn.answer.measurements import EXAMPLES, PARTS
    from sinernn.answer.published import EXAMPLES as PUBLISHED
    from sinernn.core.config import load_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = load_params(ROOT / "params.yaml")
    assert EXAMPLES == [str(number) for number in PUBLISHED]
    found = {}
    for stage, spec in _stages().items():
        command, arguments = command_of(stage)
        if command != "measure":
            continue
        name = arguments[0]
        assert stage == f"{PARTS[name].family}_{name}", stage
        if PARTS[name].items is None:
            assert "matrix" not in spec, stage
        else:
            (values,) = spec["matrix"].values()
            if isinstance(values, str):  # ${diagnose.delay_architectures}: a list of params.yaml
                values = functools.reduce(lambda node, key: node[key], values.strip("${}").split("."), raw)
            assert [str(value) for value in values] == PARTS[name].items(params), stage
        found[name] = stage
    assert set(found) == set(PARTS)
