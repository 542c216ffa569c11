"""No stale line in the documents: every command in a code block of README.md and docs/*.md still
runs against this code, and every module, link and anchor the text names still exists.

A command is a line of a ```bash / ```sh / ```shell block (continued over a trailing backslash,
split at `&&`, `||`, `|`, `;` and `&`, with `$(...)` checked too), or a `$ ` line of a ```console
or plain ``` block. Each simple command is checked by what it runs:

    sinernn SUB ...              parses with sinernn.cli.build_parser() (brackets of optional
                                 parts dropped: `[--workers 2]` is parsed as `--workers 2`)
    make TARGET ...              TARGET is a target of the Makefile
    dvc repro STAGE[@ITEM]       STAGE is a stage of dvc.yaml; `dvc exp run -S KEY=...`: KEY is in
                                 params.yaml; any other dvc subcommand is on DVC_SUBCOMMANDS
    python FILE / bash FILE      the file exists (`python -c CODE` compiles; `-m` a known module)
    deploy/secure_recipe.sh STEP STEP is one of the script's steps; `worker ARGS` parses as
                                 `sinernn tune ARGS`, `deploy/retrain.sh ARGS` as `sinernn retrain ARGS`
    path/to/program              the file exists
    anything else                its program is on TOOLS, so a typo or an unknown tool fails

Inline code in the text is held to less (it may be a fragment): `sinernn SUB` names a subcommand,
`make TARGET` a target, `dvc repro STAGE` a stage.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import io
import re
import shlex
from pathlib import Path
from typing import Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Programs a document may run besides sinernn, make, dvc, python and the repository's own scripts.
TOOLS = {
    "cd", "cp", "mv", "rm", "mkdir", "ls", "cat", "echo", "export", "read", "source", "eval", "true",
    "git", "curl", "ssh", "scp", "psql", "pgrep", "kill", "systemctl", "crontab", "sqlite3",
    "mlflow", "optuna-dashboard", "pip", "pytest",
}
DVC_SUBCOMMANDS = {"repro", "exp", "queue", "metrics", "plots", "dag", "status", "add", "pull", "push", "gc"}
PYTHON_MODULES = {"pytest", "pip", "venv"}
PREFIXES = {"time", "exec", "nohup", "env"}  # run the command that follows them
SEPARATORS = {"&&", "||", "|", ";", "&", "(", ")", "{", "}", ";;"}
SHELL_LANGUAGES = {"bash", "sh", "shell"}
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# ---- what the checks compare against ----------------------------------------------------------


@functools.cache
def _parser():
    from sinernn.cli import build_parser

    return build_parser()


@functools.cache
def _subcommands() -> set[str]:
    from sinernn.commands import COMMANDS

    return {command.name for command in COMMANDS}


@functools.cache
def _make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_./$()-][A-Za-z0-9_./$() -]*):(?!=)", line)
        if match and not line.startswith("\t"):
            targets |= set(match.group(1).split())
    return targets


@functools.cache
def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@functools.cache
def _params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@functools.cache
def _recipe_steps() -> set[str]:
    script = (ROOT / "deploy/secure_recipe.sh").read_text()
    body = script[script.index("case $step in"):]
    return set(re.findall(r"^([a-z][a-z-]*)\)", body, re.M))


# ---- finding the commands ---------------------------------------------------------------------


def commands_in(text: str) -> list[tuple[int, str]]:
    """(line number, command line) of every command in the text's fenced code blocks."""
    found, block, language, pending = [], None, "", None
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            if block is None:
                block, language = number, fence.group(2).lower()
            else:
                block, pending = None, None
            continue
        if block is None:
            continue
        if language in SHELL_LANGUAGES:
            if pending is not None:
                start, head = pending
                line = head + line
            else:
                start = number
            if line.rstrip().endswith("\\"):
                pending = (start, line.rstrip()[:-1])
                continue
            pending = None
            if line.strip() and not line.lstrip().startswith("#"):
                found.append((start, line.strip()))
        elif language in ("", "console") and line.startswith("$ "):
            found.append((number, line[2:].strip()))
    return found


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line, each as its words; `$(...)` contents included."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    commands, current, skip = [], [], False
    for word in words:
        if skip:
            skip = False
            continue
        if word in SEPARATORS:
            commands.append(current)
            current = []
        elif word[:1] in ("<", ">") and set(word) <= set("<>&|"):
            skip = True  # a redirection and its target
            if current and current[-1].isdigit():
                current.pop()  # the descriptor of 2>...
        else:
            current.append(word)
    commands.append(current)
    for inner in re.findall(r"\$\(([^()]*)\)", line):
        commands += simple_commands(inner)
    return [command for command in commands if command]


# ---- checking one command ---------------------------------------------------------------------


def _parse_sinernn(argv: list[str]) -> str | None:
    argv = [word.removeprefix("[").removesuffix("]") for word in argv]
    argv = [word for word in argv if word]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _parser().parse_args(argv)
        except SystemExit as exc:
            if exc.code:
                reason = (err.getvalue().strip().splitlines() or ["exit " + str(exc.code)])[-1]
                return f"does not parse: {reason}"
    return None


def _has_key(params: dict, key: str) -> bool:
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _check_dvc(args: list[str]) -> str | None:
    if not args or args[0] not in DVC_SUBCOMMANDS:
        return f"unknown dvc subcommand {args[:1]} (known: {sorted(DVC_SUBCOMMANDS)})"
    if args[0] == "repro":
        stages = _stages()
        for target in (word for word in args[1:] if not word.startswith("-")):
            if target.split("@")[0] not in stages:
                return f"dvc.yaml has no stage {target.split('@')[0]!r}"
    if args[:2] == ["exp", "run"]:
        params = _params()
        for flag, value in zip(args, args[1:]):
            if flag in ("-S", "--set-param") and not _has_key(params, value.split("=")[0]):
                return f"params.yaml has no key {value.split('=')[0]!r}"
    return None


def _check_python(args: list[str]) -> str | None:
    if args[:1] == ["-c"]:
        try:
            compile(args[1], "<python -c>", "exec")
        except SyntaxError as exc:
            return f"python -c does not compile: {exc}"
        return None
    if args[:1] == ["-m"]:
        if args[1] not in PYTHON_MODULES:
            return f"python -m {args[1]}: not a known module ({sorted(PYTHON_MODULES)})"
        paths = [word for word in args[2:] if word.endswith(".py") and not word.startswith("-")]
    else:
        paths = [word for word in args if not word.startswith("-")][:1]
        if not paths:
            return "python with no script"
    missing = [path for path in paths if not (ROOT / path.split("::")[0]).is_file()]
    return f"no such file {missing[0]}" if missing else None


def _check_script(program: str, args: list[str]) -> str | None:
    if not (ROOT / program).is_file():
        return f"no such file {program}"
    if program == "deploy/secure_recipe.sh":
        if not args or args[0] not in _recipe_steps():
            return f"deploy/secure_recipe.sh has no step {args[:1]} (steps: {sorted(_recipe_steps())})"
        if args[0] == "worker":
            return _parse_sinernn(["tune", *args[1:]])
    if program == "deploy/retrain.sh":
        return _parse_sinernn(["retrain", *args])
    return None


def check_command(words: list[str]) -> str | None:
    """Why this simple command is stale, or None."""
    while words and (ASSIGNMENT.match(words[0]) or words[0] in PREFIXES):
        words = words[1:]
    if words[:1] == ["sudo"]:
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[2:] if words[0] == "-u" else words[1:]
    if not words:
        return None
    program, args = words[0], words[1:]
    name = program.split("/")[-1]
    if name == "sinernn" and program in ("sinernn", ".venv/bin/sinernn"):
        return _parse_sinernn(args)
    if program == "make":
        missing = [t for t in args if not t.startswith("-") and "=" not in t and t not in _make_targets()]
        return f"the Makefile has no target {missing[0]!r}" if missing else None
    if program == "dvc":
        return _check_dvc(args)
    if program in ("python", "python3", ".venv/bin/python"):
        return _check_python(args)
    if program in ("bash", "sh"):
        scripts = [word for word in args if not word.startswith("-")]
        return _check_script(scripts[0], scripts[1:]) if scripts else None
    if "/" in program:
        return _check_script(program, args)
    if program not in TOOLS:
        return f"{program!r} is not a known program (add it to TOOLS in tests/test_docs.py if it is meant)"
    return None


def problems(text: str, name: str) -> list[str]:
    found = []
    for number, line in commands_in(text):
        try:
            commands = simple_commands(line)
        except ValueError as exc:  # unbalanced quotes
            found.append(f"{name}:{number}: {line}\n    does not split as a shell line: {exc}")
            continue
        for words in commands:
            reason = check_command(words)
            if reason:
                found.append(f"{name}:{number}: {line}\n    {reason}")
    return found


# ---- the text around the commands ----------------------------------------------------------------


def prose(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks."""
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            lines.append((number, line))
    return lines


def inline_problems(text: str, name: str) -> list[str]:
    found = []
    subcommands, targets, stages = _subcommands(), _make_targets(), _stages()
    for number, line in prose(text):
        for span in re.findall(r"`([^`]+)`", line):
            words = [w for w in span.split() if not re.match(r"^[<\[]|^[A-Z]+$", w)]  # no placeholders
            if not words:
                continue
            if words[0] in ("sinernn", ".venv/bin/sinernn") and len(words) > 1 and not words[1].startswith("-") \
                    and words[1] not in subcommands:
                found.append(f"{name}:{number}: `{span}`: no subcommand {words[1]!r}")
            if words[0] == "make" and len(words) > 1 and "=" not in words[1] and not words[1].startswith("-") \
                    and words[1] not in targets:
                found.append(f"{name}:{number}: `{span}`: the Makefile has no target {words[1]!r}")
            if words[:2] == ["dvc", "repro"]:
                for target in (w for w in words[2:] if not w.startswith("-")):
                    if target.split("@")[0] not in stages:
                        found.append(f"{name}:{number}: `{span}`: dvc.yaml has no stage {target.split('@')[0]!r}")
    return found


def _defines(path: Path, name: str) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def _resolves(dotted: str) -> bool:
    """sinernn.core.training.fit_architecture: a module, then the names it defines."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        rest = parts[cut:]
        if base.with_suffix(".py").is_file():
            return len(rest) <= 1 and (not rest or _defines(base.with_suffix(".py"), rest[0]))
        if (base / "__init__.py").is_file():
            return not rest
    return False


def module_problems(text: str, name: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for path in re.findall(r"(?<![\w./~$-])(sinernn/[\w/]*[\w.]*)", line):
            if not (ROOT / path.rstrip(".")).exists():
                found.append(f"{name}:{number}: no such file or folder {path}")
        for dotted in re.findall(r"(?<![\w./~$-])(sinernn(?:\.[A-Za-z_]\w*)+)", line):
            if not _resolves(dotted):
                found.append(f"{name}:{number}: {dotted} names no module or name of the package")
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> Iterator[str]:
    seen: dict[str, int] = {}
    for _, line in prose(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            slug = _slug(match.group(1))
            seen[slug] = seen.get(slug, -1) + 1
            yield slug if seen[slug] == 0 else f"{slug}-{seen[slug]}"


def link_problems(document: Path, root: Path = ROOT) -> list[str]:
    found = []
    name = document.relative_to(root)
    for number, line in prose(document.read_text()):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+:", target):
                continue  # http:, https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                found.append(f"{name}:{number}: link to a missing file {target}")
            elif anchor and linked.suffix == ".md" and anchor not in set(anchors(linked)):
                found.append(f"{name}:{number}: {target}: {linked.name} has no heading #{anchor}")
    return found


# ---- the tests --------------------------------------------------------------------------------


def _read(document: Path) -> tuple[str, str]:
    return document.read_text(), str(document.relative_to(ROOT))


def test_the_documents_hold_the_commands_they_should():
    """The extraction works: the README's two commands, and commands from every kind of block."""
    readme = [line for _, line in commands_in((ROOT / "README.md").read_text())]
    assert any(line.startswith("make run ") for line in readme) and any(line.startswith("make test ") for line in readme)
    every = [line for document in DOCUMENTS for _, line in commands_in(document.read_text())]
    assert len(every) > 40
    assert "sinernn validate" in every  # a `$ ` line of a console block


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_a_code_block_is_current(document):
    found = problems(*_read(document))
    assert not found, "stale commands:\n" + "\n".join(found)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_inline_command_names_a_real_subcommand_target_or_stage(document):
    found = inline_problems(*_read(document))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_the_text_names_exists(document):
    found = module_problems(*_read(document))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(document):
    found = link_problems(document)
    assert not found, "\n".join(found)


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in DOCUMENTS[1:] if f"](docs/{p.name})" not in readme]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_the_architecture_page_gives_each_stage_the_layers_dvc_yaml_does():
    """docs/architecture.md's table of stage deps, against dvc.yaml."""
    text = (ROOT / "docs/architecture.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (`core`.*?) \|$", text, re.M))
    stages = _stages()
    assert set(rows) == set(stages)
    for stage, cell in rows.items():
        documented = set(re.findall(r"`([\w/.]+)`", cell))
        deps = {dep.removeprefix("sinernn/") for dep in stages[stage]["deps"]
                if dep.startswith("sinernn/") and not dep.startswith("sinernn/jobs/")}
        deps -= {"cli.py", "commands.py"}  # every stage's
        assert documented == deps, f"{stage}: the page says {sorted(documented)}, dvc.yaml {sorted(deps)}"


def test_the_architecture_page_names_every_module_and_no_other():
    """docs/architecture.md's tree of sinernn/, against the package."""
    text = (ROOT / "docs/architecture.md").read_text()
    tree = text[text.index("## The modules"):text.index("## ", text.index("## The modules") + 3)]
    modules = {p for p in (ROOT / "sinernn").rglob("*.py") if p.name != "__init__.py"}
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules if not re.search(rf"\b{p.stem}\b", tree))
    assert not unnamed, f"docs/architecture.md does not name {unnamed}"
    names = {p.name for p in modules}
    gone = sorted(set(re.findall(r"(?<![/\w])(\w+\.py)\b", tree)) - names)
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"


STALE = """\
# A page gone stale

```bash
sinernn trian --dataset clean
make no-such-target
sinernn train --dataset clean                # --arch is required
dvc repro no-such-stage@clean
dvc exp run -S train.no_such_key=1
python stages/no_such_stage.py
deploy/secure_recipe.sh no-such-step
deploy/secure_recipe.sh worker --no-such-flag
sinernnn validate
```

```
$ sinernn predict --model m --horizon ten
```

Inline: `sinernn trian`, `make no-such-inline-target`, `dvc repro no-such-inline-stage`.
"""

CURRENT = """\
```bash
sinernn train --dataset DATASET --arch ARCH [--tuned tuned/DATASET/ARCH.json]   # placeholders are values
make serve DATASET=clean PORT=5001 && make ui
dvc repro train@clean-lstm && dvc exp run -S train.lr=0.01
PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest -q tests/test_docs.py
eval "$(deploy/secure_recipe.sh env)"
```
"""


def test_the_checker_reports_a_stale_line():
    found = problems(STALE, "stale.md")
    for expected in ("sinernn trian --dataset clean", "make no-such-target", "sinernn train --dataset clean",
                     "no-such-stage@clean", "train.no_such_key", "no_such_stage.py", "no-such-step",
                     "--no-such-flag", "sinernnn validate", "--horizon ten"):
        assert any(expected in problem for problem in found), f"{expected!r} not reported in {found}"
    assert any("stale.md:4:" in problem and "invalid choice: 'trian'" in problem for problem in found)
    inline = inline_problems(STALE, "stale.md")
    assert len(inline) == 3, inline
    assert problems(CURRENT, "current.md") == []


def test_the_checker_reports_a_moved_module_and_a_broken_link(tmp_path):
    moved = "`sinernn/jobs.py`, `sinernn.training.fit_architecture`, `sinernn.core.training.no_such_name`"
    assert len(module_problems(moved, "moved.md")) == 3
    assert module_problems("`sinernn/core/training.py`, `sinernn.core.training.fit_architecture`, "
                           "`sinernn.serving`, `~/.config/sinernn/x.pem`", "current.md") == []
    (tmp_path / "other.md").write_text("# Other\n\n## A heading (`with: code`)\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-with-code) [gone](gone.md) [no anchor](other.md#not-a-heading) "
                    "[web](https://example.com/x#y)\n")
    found = link_problems(page, tmp_path)
    assert len(found) == 2 and "gone.md" in found[0] and "#not-a-heading" in found[1], found


def test_the_screenshot_command_without_a_browser_says_so_and_exits_3(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "docs/screenshots.py"), "--out", str(tmp_path)],
                            env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert "no Chromium or Chrome on PATH" in result.stderr and "apt-get install chromium" in result.stderr
    assert not list(tmp_path.iterdir())
