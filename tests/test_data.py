"""Datasets: the generator against np.sin, chronological splits, train-only scaling, CSV errors."""

import hashlib
import math

import numpy as np
import pytest

from sinernn.core import data
from sinernn.core.config_data import CsvSource, RandomFreqSource, SineSource
from sinernn.core.errors import DataError
from sinernn.core.framing import frame, sliding_windows


def test_clean_sine_matches_numpy_and_splits_in_time():
    cfg = SineSource(source="sine", period=37.7, amplitude=2.0, phase=0.3, n_train=200, n_val=50, n_test=1100)
    dataset = data.generate("clean", cfg, seed=0, window=16)
    joined = np.concatenate([dataset.splits[s].observed[0] for s in data.SPLITS])
    t = np.arange(1350)
    np.testing.assert_allclose(joined, 2.0 * np.sin(2 * math.pi * t / 37.7 + 0.3), atol=1e-12)
    times = [dataset.splits[s].time[0] for s in data.SPLITS]
    assert times[0][-1] < times[1][0] and times[1][-1] < times[2][0]  # no future sample in train


def test_scaling_is_fitted_on_train_only():
    cfg = SineSource(source="sine", noise_std=0.5, n_train=500, n_val=100, n_test=1100)
    dataset = data.generate("noisy", cfg, seed=1, window=16)
    train = dataset.splits["train"].observed
    assert dataset.scale_mean == pytest.approx(train.mean())
    assert dataset.scale_std == pytest.approx(train.std())
    np.testing.assert_allclose(dataset.unscale(dataset.scale(train)), train)


def test_noise_has_the_configured_sigma():
    cfg = SineSource(source="sine", noise_std=0.1, n_train=5000, n_val=100, n_test=1100)
    split = data.generate("noisy", cfg, seed=2, window=16).splits["train"]
    assert np.std(split.observed - split.clean) == pytest.approx(0.1, rel=0.05)


def test_random_freq_series_each_have_their_own_sine():
    cfg = RandomFreqSource(source="random_freq", n_train_series=5, n_val_series=2, n_test_series=2,
                           train_length=50, test_length=1100)
    dataset = data.generate("random_freq", cfg, seed=0, window=16)
    assert dataset.splits["train"].observed.shape == (5, 50)
    assert dataset.splits["test"].observed.shape == (2, 1100)
    first_values = dataset.splits["train"].observed[:, 0]
    assert len(np.unique(np.round(first_values, 6))) == 5  # different phases


def test_same_seed_same_bytes_different_seed_different_data(tmp_path):
    cfg = SineSource(source="sine", noise_std=0.1, n_train=200, n_val=50, n_test=1100)
    digests = []
    for run, seed in enumerate((3, 3, 4)):
        path = tmp_path / f"run{run}/noisy.npz"
        data.save(data.generate("noisy", cfg, seed, 16), cfg, seed, path, path.with_suffix(".json"))
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_save_and_load_round_trip_with_manifest(tmp_path):
    cfg = SineSource(source="sine", n_train=200, n_val=50, n_test=1100)
    dataset = data.generate("clean", cfg, 0, 16)
    manifest = data.save(dataset, cfg, 0, tmp_path / "clean.npz", tmp_path / "clean.json")
    loaded, loaded_manifest = data.load(tmp_path / "clean.npz")
    assert loaded_manifest == manifest
    assert manifest["shapes"] == {"train": [1, 200], "val": [1, 50], "test": [1, 1100]}
    assert manifest["source"]["period"] == 50.0
    np.testing.assert_array_equal(loaded.splits["test"].observed, dataset.splits["test"].observed)


def test_missing_and_corrupt_data_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found: run `dvc repro`"):
        data.load(tmp_path / "absent.npz")
    cfg = SineSource(source="sine", n_train=200, n_val=50, n_test=1100)
    data.save(data.generate("clean", cfg, 0, 16), cfg, 0, tmp_path / "clean.npz", tmp_path / "clean.json")
    (tmp_path / "clean.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="corrupt"):
        data.load(tmp_path / "clean.npz")


def _csv(tmp_path, text):
    (tmp_path / "data/external").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data/external/series.csv").write_text(text)
    return CsvSource(source="csv", path="data/external/series.csv", column="value")


def test_csv_source_splits_a_user_series(tmp_path):
    values = np.sin(np.arange(400) / 5.0)
    cfg = _csv(tmp_path, "t,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    dataset = data.generate("mine", cfg, 0, window=16, project_root=tmp_path)
    assert [dataset.splits[s].observed.shape[1] for s in data.SPLITS] == [280, 60, 60]
    np.testing.assert_allclose(dataset.splits["val"].observed[0], values[280:340])
    assert dataset.noise_std is None


@pytest.mark.parametrize(
    "body, message",
    [
        ("t,value\n0,1.0\n1,\n2,3.0\n", "row 3: missing value"),
        ("t,value\n0,1.0\n1,abc\n", "row 3: non-numeric value 'abc'"),
        ("t,value\n0,1.0\n1,nan\n", "not finite"),
        ("t,other\n0,1.0\n", "no column 'value'"),
        # 20 values: train 14, validation and test 3 each; the train split needs more than 16
        ("t,value\n" + "".join(f"{i},{i}\n" for i in range(20)), "too short for window 16"),
    ],
)
def test_bad_csv_is_a_clear_error(tmp_path, body, message):
    cfg = _csv(tmp_path, body)
    with pytest.raises(DataError, match=message):
        data.generate("mine", cfg, 0, window=16, project_root=tmp_path)


def test_a_csv_s_validation_and_test_splits_need_no_window_of_their_own(tmp_path):
    # 40 values: train 28, validation and test 6 each, their windows reaching back before them
    dataset = data.generate("mine", _csv(tmp_path, "t,value\n" + "".join(f"{i},{i % 7}\n" for i in range(40))), 0,
                            window=16, project_root=tmp_path)
    assert len(frame(dataset, "test", "window", 16).targets) == 6


def test_missing_csv_names_the_file(tmp_path):
    cfg = CsvSource(source="csv", path="data/external/none.csv", column="value")
    with pytest.raises(DataError, match="none.csv not found"):
        data.generate("mine", cfg, 0, window=16, project_root=tmp_path)


def test_window_framing_aligns_inputs_with_the_next_value():
    series = np.arange(10.0)[None, :]
    inputs, targets = sliding_windows(series, 3)
    np.testing.assert_array_equal(inputs[0], [0, 1, 2])
    assert targets[0] == 3 and targets[-1] == 9 and len(targets) == 7


@pytest.mark.parametrize("framing, input_shape", [("window", (184, 16, 1)), ("time_to_value", (200, 1, 1)), ("naive", (200, 1))])
def test_framings_have_their_documented_shapes(framing, input_shape):
    cfg = SineSource(source="sine", n_train=200, n_val=50, n_test=1100)
    framed = frame(data.generate("clean", cfg, 0, 16), "train", framing, 16)
    assert tuple(framed.inputs.shape) == input_shape
    assert framed.targets.shape[1] == 1


def test_a_new_snapshot_continues_the_sine_later_with_its_drift(params):

    source = params.datasets["noisy"]
    first = data.generate("noisy", source, 0, 16)
    same = data.generate("noisy", source.model_copy(update={"snapshot": 0}), 0, 16)
    later = data.generate("noisy", source.model_copy(update={"snapshot": 2, "noise_drift": 0.05}), 0, 16)
    assert np.array_equal(first.splits["train"].observed, same.splits["train"].observed)  # snapshot 0: unchanged
    total = source.n_train + source.n_val + source.n_test
    assert later.splits["train"].time[0, 0] == 2 * total  # two lengths later in time
    assert later.noise_std == pytest.approx(source.noise_std + 0.1)
    expected = np.sin(2 * np.pi * later.splits["test"].time / source.period)
    assert np.allclose(later.splits["test"].clean, expected)


def test_a_csv_symlinked_out_of_data_external_is_refused(tmp_path):
    (tmp_path / "secret.csv").write_text("value\n" + "".join(f"{math.sin(i / 5)}\n" for i in range(400)))
    cfg = _csv(tmp_path, "value\n1\n")
    (tmp_path / "data/external/series.csv").unlink()
    (tmp_path / "data/external/series.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(DataError) as error:
        data.generate("mine", cfg, 0, window=16, project_root=tmp_path)
    message = str(error.value)
    assert "datasets.mine.path" in message and "outside" in message and "secret.csv" in message
    # a symlinked folder is the same way out
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "secret.csv").rename(tmp_path / "elsewhere/series.csv")
    (tmp_path / "data/external/series.csv").unlink()
    (tmp_path / "data/external/linked").symlink_to(tmp_path / "elsewhere")
    linked = CsvSource(source="csv", path="data/external/linked/series.csv", column="value")
    with pytest.raises(DataError, match=r"datasets\.mine\.path"):
        data.generate("mine", linked, 0, window=16, project_root=tmp_path)


def test_a_csv_symlinked_inside_data_external_or_into_the_dvc_cache_is_read(tmp_path):
    values = "value\n" + "".join(f"{math.sin(i / 5)}\n" for i in range(400))
    cfg = _csv(tmp_path, values)
    (tmp_path / "data/external/alias.csv").symlink_to(tmp_path / "data/external/series.csv")
    alias = CsvSource(source="csv", path="data/external/alias.csv", column="value")
    assert data.generate("mine", alias, 0, window=16, project_root=tmp_path).splits["train"].observed.shape == (1, 280)
    # `dvc config cache.type symlink` links a tracked file into .dvc/cache
    cached = tmp_path / ".dvc/cache/files/md5/ab/cdef"
    cached.parent.mkdir(parents=True)
    cached.write_text(values)
    (tmp_path / "data/external/series.csv").unlink()
    (tmp_path / "data/external/series.csv").symlink_to(cached)
    assert data.generate("mine", cfg, 0, window=16, project_root=tmp_path).splits["val"].observed.shape == (1, 60)


def test_a_csv_path_with_dotdot_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"'\.\.'"):
        CsvSource(source="csv", path="data/external/../../etc/passwd", column="value")


def test_a_memory_window_longer_than_a_csv_train_split_is_a_clear_error(tmp_path, params):
    from sinernn.answer import experiments

    cfg = _csv(tmp_path, "value\n" + "".join(f"{math.sin(i / 5)}\n" for i in range(400)))
    dataset = data.generate("mine", cfg, 0, window=16, project_root=tmp_path)  # train: 280 values
    raw = params.model_dump()
    raw["diagnose"]["memory_windows"] = [8, 280]
    with pytest.raises(DataError, match=r"diagnose\.memory_windows: window 280 .* 'mine' has 280 in its train"):
        experiments.memory(type(params).model_validate(raw), dataset)
