"""The DVC pipeline as the runner sees it: stages, who reads whose outputs, and what changed.

Read through DVC's own API (the same graph `dvc dag` draws and the same check `dvc status`
makes), so the runner never second-guesses DVC: it only decides which stage to start when, and
each stage is still reproduced by `dvc repro --single-item`, which checks it again before running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sinernn.core.errors import SinernnError
from sinernn.parallel.schedule import downstream_of, topological


@dataclass(frozen=True)
class Pipeline:
    upstream: dict[str, frozenset[str]]  # stage -> the stages whose outputs it reads
    changed: frozenset[str]  # the stages `dvc status` reports (changed deps, outs or command)
    frozen: frozenset[str]  # `frozen: true`: never reproduced

    @property
    def stages(self) -> list[str]:
        return topological(self.upstream)

    def closure(self, targets: list[str]) -> set[str]:
        """The targets and every stage they read from, directly or not."""
        found, todo = set(), list(targets)
        while todo:
            stage = todo.pop()
            if stage not in found:
                found.add(stage)
                todo += self.upstream[stage]
        return found

    def descendants(self, stages: set[str]) -> set[str]:
        below = downstream_of(self.upstream)
        found, todo = set(), list(stages)
        while todo:
            stage = todo.pop()
            for child in below[stage]:
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def to_run(self, targets: list[str] | None = None, force: bool = False) -> list[str]:
        """The stages to hand to DVC, upstream first: within the targets' closure (every stage by
        default), the changed ones and everything after them, whose inputs may change when they
        run (DVC skips those whose inputs turn out the same). `force`: every stage of the closure."""
        scope = self.closure(targets) if targets else set(self.upstream)
        chosen = scope if force else (self.changed | self.descendants(set(self.changed))) & scope
        return [stage for stage in self.stages if stage in chosen and stage not in self.frozen]


def load(root: Path, targets: list[str] | None = None, status: bool = True) -> tuple[Pipeline, list[str]]:
    """The pipeline of the DVC project at `root`, and the targets as stage names (`train` stands for
    every train@... stage). A `.dvc` data file is a stage too, as in `dvc repro`: when its file
    changed (or is not in the cache yet), DVC verifies it, saves its new hash and caches it.
    status=False: leave `changed` empty (the graph alone is quick; DVC's status hashes the deps)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo, lock_repo

    try:
        repo = Repo(str(root))
    except DvcException as exc:
        raise SinernnError(f"{root} is not a DVC project ({exc})") from None
    try:
        if status:  # what runs stages repairs (`sinernn plan` only reads the graph)
            repair_rwlock(repo)
        # One lock for the graph and the status: DVC drops its index each time it takes the lock,
        # and would otherwise read dvc.yaml and dvc.lock twice.
        with lock_repo(repo):
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            stages = {stage.addressing: stage for stage in graph.nodes}
            upstream = {name: frozenset(dep.addressing for dep in graph.successors(stage) if dep.addressing in stages)
                        for name, stage in stages.items()}
            names = [name for target in targets or [] for name in _resolve(target, stages)]
            changed = frozenset(name for name in repo.status() if name in stages) if status else frozenset()
    except DvcException as exc:
        raise SinernnError(f"DVC cannot read the pipeline: {exc}") from None
    finally:
        repo.close()
    frozen = frozenset(name for name, stage in stages.items() if stage.frozen)
    return Pipeline(upstream, changed, frozen), names


def _resolve(target: str, stages: dict) -> list[str]:
    """A stage name, or a matrix/foreach group: `train` is every `train@...`."""
    if target in stages:
        return [target]
    group = [name for name in stages if name.partition("@")[0] == target]
    if not group:
        raise SinernnError(f"no stage {target!r} in dvc.yaml; its stages: "
                           f"{', '.join(sorted({name.partition('@')[0] for name in stages}))}")
    return group


def repair_rwlock(repo) -> bool:
    """Remove DVC's .dvc/tmp/rwlock when it does not parse; whether it did.

    DVC rewrites that file in place, so a DVC process killed while writing it leaves it empty, and
    every later DVC command then fails until someone removes it by hand, as DVC's own error says.
    Several stages at once make that moment likelier. With the file's own lock held (as DVC holds
    it), an unreadable file holds nothing any process could still use, and is removed."""
    from dvc.lock import make_lock

    path = Path(repo.tmp_dir) / "rwlock"
    if not path.exists():
        return False
    hardlink = repo.config["core"].get("hardlink_lock", False)
    with make_lock(str(path.with_name("rwlock.lock")), tmp_dir=repo.tmp_dir, hardlink_lock=hardlink):
        try:
            readable = isinstance(json.loads(path.read_text()), dict)
        except ValueError:
            readable = False
        if not readable:
            path.unlink()
            print(f"sinernn repro: removed {path}: a killed DVC process left it unreadable")
    return not readable
