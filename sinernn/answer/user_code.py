"""`sinernn diagnose --code my_setup.py`: the diagnosis run on the reader's own model and tensors.

The file is imported and run as the reader's own Python code, on their machine, with their
permissions (nothing is fetched or unpickled from anywhere else). It defines one function:

    def build():
        ...
        return {
            "model": model,              # an nn.Module; model(inputs) is what the loss compares
            "inputs": inputs,            # the tensor the model is trained on, as it is fed
            "targets": targets,          # what the loss compares model(inputs) with
            "optimizer": optimizer,      # optional: default Adam(model.parameters(), lr=1e-3)
            "loss": loss_fn,             # optional: default nn.MSELoss()
            "future_inputs": future,     # optional: the inputs the model will forecast from
        }

A tuple (model, inputs, targets[, optimizer]) works too. The file is imported, so code at its top
level runs (guard a script's own training with `if __name__ == "__main__":`). The setup is trained
full-batch for a few epochs (the loop the published examples use: zero_grad, loss, backward, step),
then every check of sinernn/answer/diagnosis.py runs on it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sinernn.answer.diagnosis import Finding, diagnose
from sinernn.core.errors import SinernnError

CONTRACT = ("build() must return a dict with keys model, inputs, targets and optionally optimizer, loss and "
            "future_inputs, or a tuple (model, inputs, targets[, optimizer])")


@dataclass
class Setup:
    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    optimizer: torch.optim.Optimizer | None = None
    loss: nn.Module | None = None
    future_inputs: torch.Tensor | None = None


def load_setup(path: Path) -> Setup:
    """Run the file's build(); every way it can fail to give a setup is one SinernnError."""
    if not path.is_file():
        raise SinernnError(f"--code {path}: no such file")
    # Any suffix: the file is read as Python source (a .txt copy of a script works too).
    loader = importlib.machinery.SourceFileLoader(f"sinernn_user_setup_{path.stem}", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    saved_path = list(sys.path)
    sys.path.insert(0, str(path.resolve().parent))  # so that the file can import its neighbours
    sys.modules[spec.name] = module  # dataclasses and pickling look a class's module up here
    try:
        loader.exec_module(module)
        if not callable(getattr(module, "build", None)):
            raise SinernnError(f"--code {path}: defines no build() function; {CONTRACT}")
        built = module.build()
    except SinernnError:
        raise
    except SystemExit as exc:  # e.g. argparse at the file's top level, parsing sinernn's own arguments
        raise SinernnError(f"--code {path}: it called sys.exit({exc.code}) while being loaded; guard a script's "
                           f"own code with `if __name__ == \"__main__\":`") from None
    except Exception as exc:  # the user's code failed before there was anything to diagnose
        raise SinernnError(f"--code {path}: running it raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path[:] = saved_path
        sys.modules.pop(spec.name, None)
    return _as_setup(built, path)


def _as_setup(built, path: Path) -> Setup:
    if isinstance(built, (tuple, list)) and len(built) in (3, 4):
        built = dict(zip(("model", "inputs", "targets", "optimizer"), built))
    if not isinstance(built, dict) or not {"model", "inputs", "targets"} <= built.keys():
        raise SinernnError(f"--code {path}: build() returned {type(built).__name__}; {CONTRACT}")
    unknown = built.keys() - {"model", "inputs", "targets", "optimizer", "loss", "future_inputs"}
    if unknown:
        raise SinernnError(f"--code {path}: build() returned unknown keys {sorted(unknown)}; {CONTRACT}")
    setup = Setup(**built)
    if not isinstance(setup.model, nn.Module):
        raise SinernnError(f"--code {path}: build()'s model is a {type(setup.model).__name__}, not an nn.Module")
    for key in ("inputs", "targets", "future_inputs"):
        value = getattr(setup, key)
        if value is not None and not isinstance(value, torch.Tensor):
            raise SinernnError(f"--code {path}: build()'s {key} is a {type(value).__name__}, not a torch.Tensor")
    return setup


def train_setup(setup: Setup, epochs: int) -> tuple[list[float], BaseException | None]:
    """Full-batch training, as the reader's own loop would do it; stops at a crash or a NaN loss."""
    optimizer = setup.optimizer or torch.optim.Adam(setup.model.parameters(), lr=1e-3)
    loss_fn = setup.loss or nn.MSELoss()
    losses: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broadcast warning is a finding of its own (shapes)
        try:
            for _ in range(epochs):
                optimizer.zero_grad()
                loss = loss_fn(setup.model(setup.inputs), setup.targets)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                if not math.isfinite(losses[-1]):
                    break
        except Exception as exc:  # the crash is what the reader asked about
            return losses, exc
    return losses, None


def diagnose_code(path: Path, epochs: int) -> list[Finding]:
    setup = load_setup(path)
    losses, failure = train_setup(setup, epochs)
    return diagnose(setup.model, setup.inputs, setup.targets, losses, failure, future_inputs=setup.future_inputs)
