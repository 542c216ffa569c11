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


# The keys a one-layer recurrent checkpoint held before the head's dropout existed: a dropout
# without parameters (nn.Dropout or nn.Identity) adds none, so those checkpoints still load.
RECURRENT_KEYS = {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "head.weight", "head.bias"}


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_a_checkpoint_saved_before_the_head_dropout_still_loads(tmp_path, dropout):
    config = {**CONFIGS["lstm"], "dropout": dropout, "input_length": 12}
    model = build_model(config, seed=0)
    assert set(model.state_dict()) == RECURRENT_KEYS
    old = {key: torch.randn_like(tensor) for key, tensor in model.state_dict().items()}  # as an old file held
    torch.save({"config": config, "state_dict": old}, tmp_path / "model.pt")
    loaded, _ = load_checkpoint(tmp_path / "model.pt")
    assert all(torch.equal(loaded.state_dict()[key], old[key]) for key in old)


def test_dropout_acts_on_a_one_layer_model_in_training_and_not_in_evaluation():
    """torch's own dropout only sits between stacked layers: a one-layer LSTM ignored it, so a
    searched dropout changed nothing. Now it drops the last step's hidden output before the head."""
    model = build_model({**CONFIGS["lstm"], "dropout": 0.5, "input_length": 12}, seed=0)
    x = torch.randn(16, 12, 1)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_without_dropout_a_recurrent_model_is_what_it_was():
    """Dropout 0: the head reads the last step as before, in training mode too, and draws nothing
    from the RNG (so trainings stay bit for bit as they were)."""
    model = build_model({**CONFIGS["lstm"], "input_length": 12}, seed=0).train()
    x = torch.randn(16, 12, 1)
    before = torch.get_rng_state()
    out = model(x)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(out, model.head(model.rnn(x)[0][:, -1, :]))  # the forward pass of old


def test_a_stacked_model_keeps_its_dropout_between_layers():
    model = build_model({**CONFIGS["deep_lstm"], "input_length": 12}, seed=0)
    assert model.rnn.dropout == 0.1 and model.drop.p == 0.1
