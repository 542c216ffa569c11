"""Every params combination that validates also runs; every one outside the validators' ranges is
refused with one ParamsError (issue 9).

Each draw is a whole params file from a seeded generator: tiny sizes, every architecture kind,
sine and random_freq sources with random period, noise and drift, lengths at or just past the
windows that frame them. A valid draw runs the real `generate` and `train` jobs against the
session's MLflow store; a broken draw (one mutation that leaves the accepted ranges) must stop at
validation. SINERNN_PROPERTY_DRAWS sets the number of draws (default 25); a failing draw
reproduces alone: pytest 'tests/test_params_property.py::test_params_that_validate_also_run[7]'.
"""

from __future__ import annotations

import math
import os
import random

import pytest

from sinernn.core.config import parse_params
from sinernn.core.config_data import BASELINE_KINDS, ParamsError
from sinernn.core.errors import TrainingDiverged
from sinernn.jobs.generate import generate_job
from sinernn.jobs.train import train_job

DRAWS = int(os.environ.get("SINERNN_PROPERTY_DRAWS") or 25)
KINDS = ("rnn", "gru", "lstm", "transformer", "ridge", "persistence")
NAME_CHARS = "abcxyz0189_-"
CSV_PATH, CSV_ROWS = "data/external/tiny.csv", 300

pytestmark = [
    pytest.mark.faults(scenario="params that validate also run"),
    # what the naive framing exists to show, and a ridge fitted on a handful of windows
    pytest.mark.filterwarnings("ignore:Using a target size:UserWarning"),
    pytest.mark.filterwarnings("ignore:Singular matrix:UserWarning"),
]


def _name(rng: random.Random) -> str:
    """A random name that NAME_PATTERN accepts: it becomes file paths, run names and MLflow tags."""
    return rng.choice("abcz09") + "".join(rng.choices(NAME_CHARS, k=rng.randint(0, 12)))


def _arch(rng: random.Random, kind: str) -> dict:
    if kind in ("rnn", "gru", "lstm"):
        return {"kind": kind, "hidden_size": rng.randint(2, 8), "num_layers": rng.randint(1, 2),
                "dropout": rng.choice([0.0, 0.0, rng.uniform(0, 0.5)])}
    if kind == "transformer":
        nhead = rng.randint(1, 2)
        return {"kind": kind, "nhead": nhead, "d_model": nhead * rng.randint(1, 4), "num_layers": rng.randint(1, 2),
                "dim_feedforward": rng.randint(2, 16), "dropout": rng.choice([0.0, rng.uniform(0, 0.5)])}
    if kind == "ridge":
        return {"kind": kind, "alpha": rng.choice([0.0, 10 ** rng.uniform(-8, 1)])}
    return {"kind": kind}


def _longer_than(rng: random.Random, window: int) -> int:
    """A length that just fits `window` (a window plus its target), or a little more."""
    return window + 1 + rng.choice([0, 0, 1, 3, rng.randint(0, 40)])


def _sine(rng: random.Random, window: int, test_window: int) -> dict:
    snapshot = rng.choice([0, 0, 1, 2, 3])
    # period x (1 + period_drift x snapshot) stays above 0: the drift may shrink it to a sliver
    lowest = max(-0.99, -1 / snapshot + 0.01) if snapshot else -0.99
    return {
        "source": "sine",
        "period": rng.choice([rng.uniform(2.5, 200.0), rng.uniform(0.3, 2.5), 10 ** rng.uniform(-1, 4)]),
        "amplitude": 10 ** rng.uniform(-2, 2),
        "phase": rng.uniform(-math.pi, math.pi),
        "noise_std": rng.choice([0.0, rng.uniform(0, 0.5)]),
        "n_train": _longer_than(rng, window),
        # validation and test windows reach back into the split before: one value is enough
        "n_val": rng.choice([1, rng.randint(1, 5), _longer_than(rng, window)]),
        "n_test": rng.choice([1, rng.randint(1, 50), test_window + 1000 + rng.randint(0, 20)]),
        "trend": rng.choice([0.0, 0.0, rng.uniform(-0.1, 0.1)]),
        "snapshot": snapshot,
        "period_drift": rng.choice([0.0, rng.uniform(lowest, 0.5)]),
        "phase_drift": rng.choice([0.0, rng.uniform(-3, 3)]),
        "noise_drift": rng.choice([0.0, rng.uniform(0, 0.1)]),
    }


def _random_freq(rng: random.Random, window: int, test_window: int) -> dict:
    low = rng.uniform(2.5, 60.0)
    return {
        "source": "random_freq",
        "period_min": low,
        "period_max": low + rng.choice([0.0, rng.uniform(0, 60)]),
        "amplitude": 10 ** rng.uniform(-2, 2),
        "noise_std": rng.choice([0.0, rng.uniform(0, 0.5)]),
        "n_train_series": rng.randint(1, 3),
        "n_val_series": rng.randint(1, 3),
        "n_test_series": rng.randint(1, 2),
        "train_length": _longer_than(rng, window),
        "test_length": _longer_than(rng, test_window),
        "snapshot": rng.choice([0, 0, 1, 5]),
    }


def _csv(rng: random.Random, window: int, test_window: int) -> dict:
    """CSV_ROWS values: a tenth of them is 30, more than any window drawn here."""
    return {"source": "csv", "path": CSV_PATH, "column": "value",
            "val_fraction": rng.uniform(0.1, 0.45), "test_fraction": rng.uniform(0.1, 0.45)}


def draw_params(rng: random.Random, kind: str) -> dict:
    """A params file the validators should accept, with architecture `kind` under training."""
    dataset, arch = _name(rng), _name(rng)
    framing = rng.choice(["window", "window", "time_to_value"] + (["naive"] if kind not in BASELINE_KINDS else []))
    window = rng.randint(1, 12)
    space_window = rng.choice([None, {"low": rng.randint(1, window), "high": window + rng.randint(0, 8)}])
    longest = max(window, space_window["high"] if space_window else 0)
    memory_windows = sorted(rng.sample(range(1, 17), rng.randint(1, 3)))
    fits = max(longest, *memory_windows)  # the dataset is also diagnose.memory_dataset
    source = rng.choice([_sine, _sine, _sine, _random_freq, _random_freq, _csv])(rng, fits, fits)
    # the dataset's own training settings and season (seasonal naive reads a season back in its window)
    # window and diff scaling need every window framed on a dataset to hold 2 values or more
    shortest = min(window, space_window["low"] if space_window else window, *memory_windows)
    scalings = ["global"] + (["window", "diff"] if framing == "window" and shortest > 1 else [])
    source["season"] = rng.randint(1, window)
    source["train"] = rng.choice([{}, {"scaling": rng.choice(scalings)}, {"batch_size": rng.randint(1, 64)},
                                  {"max_epochs": 1, "scaling": rng.choice(scalings)}])
    datasets = {dataset: source}
    gradient = dataset
    if source["source"] != "sine":  # diagnose.gradient_dataset must be a sine
        gradient = dataset + "-sine"
        datasets[gradient] = _sine(rng, fits, fits)
    helper = arch + "-lstm"  # diagnose.extrapolation_arch and memory_arch must be neural
    stacked, attention = arch + "-deep", arch + "-attn"  # claims.stacked_arch and transformer_arch
    return {
        "seed": rng.randint(0, 2**32),
        "run": {"datasets": list(datasets), "train_datasets": [dataset], "architectures": [arch]},
        "datasets": datasets,
        "architectures": {arch: _arch(rng, kind), helper: _arch(rng, "lstm"),
                          stacked: {**_arch(rng, "lstm"), "num_layers": 2}, attention: _arch(rng, "transformer")},
        "train": {
            "framing": framing, "window": window, "batch_size": rng.choice([1, 2, 7, 64, 512]),
            "scaling": rng.choice(scalings),
            "max_epochs": rng.randint(1, 2), "lr": 10 ** rng.uniform(-4, -1.3),
            "lr_schedule": rng.choice(["cosine", "plateau", "none"]), "grad_clip": rng.choice([0.0, 0.5, 1.0, 5.0]),
            "patience": rng.randint(1, 3), "threads": rng.randint(1, 2),
        },
        "tune": {"workers": rng.randint(1, 64), "space": {"window": space_window}},
        "diagnose": {
            "corrected_window": rng.randint(1, 149), "gradient_dataset": gradient, "trend_dataset": gradient,
            "gradient_windows": sorted(rng.sample(range(1, 600), rng.randint(1, 2))),
            "stability_dataset": dataset, "extrapolation_dataset": dataset, "extrapolation_arch": helper,
            "memory_dataset": dataset, "memory_arch": helper, "memory_windows": memory_windows,
        },
        "claims": {"linear_datasets": [dataset], "sine_dataset": gradient, "long_window_dataset": dataset,
                   "overfit_dataset": dataset, "stacked_arch": stacked, "transformer_arch": attention},
        "registry": {"enabled": False},  # needs logged models; exporting one takes seconds
        "mlflow": {"experiment": "property", "log_models": False},
    }


def _trained(raw: dict) -> tuple[str, str]:
    return raw["run"]["train_datasets"][0], raw["run"]["architectures"][0]


def _trained_synthetic(raw: dict) -> tuple[str, dict]:
    """The trained dataset, or the sine beside a CSV one: the validators know its lengths."""
    name = _trained(raw)[0] if raw["datasets"][_trained(raw)[0]]["source"] != "csv" else raw["diagnose"]["gradient_dataset"]
    return name, raw["datasets"][name]


# One way each to leave the accepted ranges; each returns the key the error must name.
def _window_too_long(raw, rng):
    name, ds = _trained_synthetic(raw)
    key = "n_train" if ds["source"] == "sine" else rng.choice(["train_length", "test_length"])
    ds[key] = rng.randint(1, raw["train"]["window"])
    raw["tune"]["space"]["window"] = None
    raw["diagnose"]["memory_windows"] = [1]
    return f"datasets.{name}.{key}"


def _tune_window_too_long(raw, rng):
    shortest = min(ds[k] for ds in raw["datasets"].values() for k in ("n_train", "train_length", "test_length") if k in ds)
    raw["tune"]["space"]["window"] = {"low": 1, "high": shortest + rng.randint(0, 5)}
    return "tune.space.window.high"


def _memory_window_too_long(raw, rng):
    name, ds = _trained_synthetic(raw)
    raw["diagnose"]["memory_dataset"] = name
    shortest = min(ds[k] for k in ("n_train", "train_length", "test_length") if k in ds)
    raw["diagnose"]["memory_windows"] = [2, shortest + rng.randint(0, 5)]
    return "diagnose.memory_windows"


def _season_beyond_the_window(raw, rng):
    name = _trained(raw)[0]
    ds = raw["datasets"][name]
    raw["architectures"]["naive-season"] = {"kind": "seasonal_naive"}
    raw["run"]["architectures"].append("naive-season")
    raw["train"]["framing"] = "window"
    ds["season"] = raw["train"]["window"] + rng.randint(1, 10)
    ds["train"].pop("window", None)
    return f"datasets.{name}.season"


def _period_drifts_to_zero(raw, rng):
    name = raw["diagnose"]["gradient_dataset"]  # always a sine
    snapshot = rng.randint(2, 10)
    raw["datasets"][name].update(snapshot=snapshot, period_drift=rng.uniform(-0.99, -1 / snapshot))
    return f"datasets.{name}.period_drift"


def _bad_name(raw, rng):
    section = rng.choice(["datasets", "architectures"])
    bad = rng.choice(["../" + _name(rng), _name(rng).upper() + "X", _name(rng) + " x", "-" + _name(rng),
                      _name(rng) + "'", "a" * 65, _name(rng) + "/x"])
    raw[section][bad] = next(iter(raw[section].values()))
    return f"{section}: name"


def _too_many_threads(raw, rng):
    raw["train"]["threads"] = rng.randint(257, 10_000)
    return "train.threads"


def _too_many_workers(raw, rng):
    raw["tune"]["workers"] = rng.randint(65, 10_000)
    return "tune.workers"


def _csv_out_of_data_external(raw, rng):
    raw["datasets"][_name(rng)] = {"source": "csv", "column": "value",
                                   "path": rng.choice(["data/external/../../", "data/external/x/../../../"]) + "x.csv"}
    return ".path"


def _corrected_window_too_long(raw, rng):
    raw["diagnose"]["corrected_window"] = rng.randint(150, 2000)
    return "diagnose.corrected_window"


def _not_positive(raw, rng):
    name, ds = _trained_synthetic(raw)
    section, key = rng.choice([("train", "max_epochs"), ("train", "batch_size"), ("train", "window"), ("train", "lr"),
                               ("datasets", "amplitude"), ("datasets", "n_train_series" if ds["source"] == "random_freq" else "period")])
    target = raw["train"] if section == "train" else raw["datasets"][name]
    target[key] = rng.choice([0, -1, -rng.randint(2, 100)]) * (1.0 if isinstance(target[key], float) else 1)
    return key


MUTATIONS = [_window_too_long, _tune_window_too_long, _memory_window_too_long, _season_beyond_the_window,
             _period_drifts_to_zero, _bad_name, _too_many_threads, _too_many_workers,
             _csv_out_of_data_external, _corrected_window_too_long, _not_positive]


@pytest.fixture
def torch_threads():
    """train_job sets torch's thread count for the process: put it back for the other tests."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("draw", range(DRAWS))
def test_params_that_validate_also_run(draw, tracked, tmp_path, torch_threads, fault):
    rng = random.Random(draw)
    raw = draw_params(rng, KINDS[draw % len(KINDS)])
    params = parse_params(raw)  # the generator stays inside the ranges the validators accept
    dataset, arch = _trained(raw)
    (tmp_path / CSV_PATH).write_text("value\n" + "".join(f"{math.sin(t / 7) + 0.1 * math.cos(t):.6f}\n" for t in range(CSV_ROWS)))
    npz = tmp_path / f"data/processed/{dataset}.npz"
    crashed = 0
    try:
        generate_job(params, dataset, npz)
        train_job(params, dataset, arch, npz, tmp_path / f"models/{dataset}/{arch}",
                       tmp_path / f"reports/history/{dataset}/{arch}.csv")
    except TrainingDiverged as exc:  # a clear outcome, not a crash: the loop refuses NaN
        pytest.skip(f"draw {draw} diverged ({exc}): params {raw}")
    except Exception:
        crashed = 1
        raise
    finally:
        fault.record("validated draws that crashed", crashed)
    assert (tmp_path / f"models/{dataset}/{arch}/model.pt").is_file()


@pytest.mark.parametrize("draw", range(max(DRAWS, len(MUTATIONS))))
def test_params_outside_the_ranges_are_refused(draw, fault):
    rng = random.Random(-1 - draw)
    raw = draw_params(rng, rng.choice(KINDS))
    parse_params(raw)  # valid before the mutation
    mutation = MUTATIONS[draw % len(MUTATIONS)]
    key = mutation(raw, rng)
    accepted = 1
    try:
        with pytest.raises(ParamsError) as error:  # and no other exception
            parse_params(raw)
        accepted = 0
    finally:
        fault.record("invalid draws accepted", accepted)
    message = str(error.value)
    assert key in message, f"{mutation.__name__}: {message}"
    assert "\n" not in message
