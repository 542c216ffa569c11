"""Every architecture: shapes, seeded initialisation, checkpoints that load without code."""

import pytest
import torch

from sinernn.core.checkpoint import load_checkpoint, save_checkpoint
from sinernn.core.errors import DataError
from sinernn.core.models import KINDS, build_model

CONFIGS = {
    "rnn": {"kind": "rnn", "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "gru": {"kind": "gru", "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "lstm": {"kind": "lstm", "hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "deep_lstm": {"kind": "lstm", "hidden_size": 8, "num_layers": 3, "dropout": 0.1},
    "transformer": {"kind": "transformer", "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16, "dropout": 0.0},
    "ridge": {"kind": "ridge", "alpha": 1.0},
    "persistence": {"kind": "persistence"},
}


@pytest.mark.parametrize("name", CONFIGS)
def test_each_architecture_maps_windows_to_the_next_value(name):
    model = build_model({**CONFIGS[name], "input_length": 12}, seed=0)
    assert model(torch.randn(5, 12, 1)).shape == (5, 1)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm", "deep_lstm", "transformer"])
def test_neural_models_accept_one_unbatched_sequence(name):
    model = build_model({**CONFIGS[name], "input_length": 12}, seed=0)
    assert model(torch.randn(30, 1)).shape == (1,)  # the naive framing's (T, 1) input


def test_initial_weights_depend_on_the_seed_only():
    config = {**CONFIGS["lstm"], "input_length": 12}
    torch.manual_seed(123)  # global RNG state must not matter
    first = build_model(config, seed=7).state_dict()
    torch.manual_seed(456)
    second = build_model(config, seed=7).state_dict()
    third = build_model(config, seed=8).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid kinds: " + ", ".join(KINDS)):
        build_model({"kind": "mamba"})


@pytest.mark.parametrize("name", CONFIGS)
def test_checkpoint_round_trip_gives_identical_predictions(tmp_path, name):
    config = {**CONFIGS[name], "input_length": 12}
    model = build_model(config, seed=3).eval()
    save_checkpoint(tmp_path / "model.pt", model, config)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)  # plain tensors and dicts only
    assert set(payload) == {"config", "state_dict"}
    loaded, loaded_config = load_checkpoint(tmp_path / "model.pt")
    x = torch.randn(4, 12, 1)
    assert loaded_config == config
    assert torch.equal(loaded(x), model(x))


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "model.pt")
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        load_checkpoint(tmp_path / "model.pt")
