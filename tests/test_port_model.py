"""The ported model: state carried across chunks, refusals, files both ways, and a few
models against Keras itself (the full Keras matrix is tests/test_port_keras.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from port_helpers import keras_arrays, keras_predict, layer, np_recurrent, sequential

from torch_rnnsin import load_keras_model, save_keras_model
from torch_rnnsin.port.model import build_model

F = 2


def stack(kinds_units, head=True, rs_last=False, seed=0):
    """A forward stack: recurrent layers (return_sequences between them) and a Dense head."""
    rng = np.random.default_rng(seed)
    entries, weights, f = [], {}, F
    for i, (kind, units, opts) in enumerate(kinds_units):
        rs = i < len(kinds_units) - 1 or rs_last
        name = f"{kind.lower()}_{i}"
        entries.append(layer(kind, name, units=units, return_sequences=rs, **opts))
        weights[name] = keras_arrays(kind, f, units, rng, reset_after=opts.get("reset_after", True))
        f = units
    if head:
        entries.append(layer("Dense", "head", units=2, activation="tanh"))
        weights["head"] = keras_arrays("Dense", f, 2, rng)
    return build_model(sequential(F, *entries), weights)


STACKS = [
    [("SimpleRNN", 3, {"activation": "relu"})],
    [("LSTM", 4, {}), ("GRU", 3, {})],
    [("GRU", 3, {"reset_after": False}), ("SimpleRNN", 2, {}), ("LSTM", 2, {})],
]


@pytest.mark.parametrize("rs_last", [True, False])
@pytest.mark.parametrize("spec", STACKS, ids=lambda s: "-".join(k for k, _, _ in s))
def test_two_chunks_with_the_state_equal_one_call(spec, rs_last):
    model = stack(spec, rs_last=rs_last)
    assert model.streamable
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 9, F)).astype(np.float32))
    with torch.no_grad():
        full, state_full = model(x, return_state=True)
        y1, s1 = model(x[:, :4], return_state=True)
        y2, s2 = model(x[:, 4:], state=s1, return_state=True)
    expected_sizes = [h for k, h, _ in spec for h in ([h, h] if k == "LSTM" else [h])]
    assert model.state_sizes == expected_sizes == [s.shape[1] for s in s2]
    if rs_last:
        assert (torch.cat([y1, y2], dim=1) - full).abs().max() <= 1e-6
    else:
        assert (y2 - full).abs().max() <= 1e-6
    for a, b in zip(s2, state_full, strict=True):
        assert (a - b).abs().max() <= 1e-6


def test_lstm_state_is_h_then_c_as_in_the_equations():
    rng = np.random.default_rng(4)
    arrays = keras_arrays("LSTM", F, 3, rng)
    model = build_model(sequential(F, layer("LSTM", "l", units=3)), {"l": arrays})
    x = rng.normal(size=(2, 5, F))
    _, (h, c) = np_recurrent("LSTM", x, arrays, 3)
    with torch.no_grad():
        _, state = model(torch.from_numpy(x.astype(np.float32)), return_state=True)
    assert np.abs(state[0].numpy() - h).max() < 1e-5
    assert np.abs(state[1].numpy() - c).max() < 1e-5


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (layer("GRU", "back", units=2, go_backwards=True), "GRU 'back'.*go_backwards=True"),
        (
            layer("Bidirectional", "bi", layer=layer("LSTM", "l", units=2)),
            "Bidirectional 'bi'.*backwards",
        ),
    ],
)
def test_state_refused_where_a_chunk_cannot_continue(entry, why):
    model = build_model(sequential(F, entry))
    assert not model.streamable
    x = torch.zeros(1, 3, F)
    model(x)  # a plain call is fine
    with pytest.raises(ValueError, match=why):
        model(x, return_state=True)
    with pytest.raises(ValueError, match=why):
        model(x, state=[torch.zeros(1, 2)])


def test_bad_inputs_and_states_are_one_line_errors():
    model = stack([("LSTM", 3, {})])
    with pytest.raises(ValueError, match=r"expected a tensor of shape \(batch, time >= 1, 2\)"):
        model(torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"expected 2 tensors, got 1"):
        model(torch.zeros(2, 4, F), state=[torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"state\[1\]: expected shape \(2, 3\), got \(1, 3\)"):
        model(torch.zeros(2, 4, F), state=[torch.zeros(2, 3), torch.zeros(1, 3)])


def test_trainable_in_torch_real_modules():
    model = stack([("LSTM", 3, {}), ("GRU", 2, {})])
    assert isinstance(model.layers[0].rnn, torch.nn.LSTM)
    assert isinstance(model.layers[1].rnn, torch.nn.GRU)
    model.train()
    loss = model(torch.randn(2, 5, F)).pow(2).sum()
    loss.backward()
    assert model.layers[0].rnn.weight_hh_l0.grad.abs().sum() > 0
    assert model.layers[0].rnn.bias_hh_l0.grad is None  # frozen: Keras has one bias


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_torch_files_round_trip_exactly(tmp_path, suffix):
    model = stack([("GRU", 3, {"reset_after": False}), ("LSTM", 2, {})], seed=3)
    path = save_keras_model(model, tmp_path / f"m{suffix}")
    back = load_keras_model(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2
        assert torch.equal(a, b)
    assert not back.layers[1].rnn.bias_hh_l0.requires_grad
    x = torch.randn(2, 4, F)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    with pytest.raises(FileExistsError, match="already exists"):
        save_keras_model(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_torch_file_with_a_foreign_architecture_refused(tmp_path):
    model = stack([("LSTM", 2, {})])
    path = save_keras_model(model, tmp_path / "m.safetensors")
    from torch_rnnsin.port import io as formats

    sd, arch = formats.read_torch_file(path)
    sd["layers.0.cells.0.rnn.weight_ih_l0"] = np.zeros((8, 5), np.float32)
    formats.write_torch_file(tmp_path / "bad.safetensors", sd, arch)
    with pytest.raises(
        ValueError, match=r"bad.safetensors: layers.0.cells.0.rnn.weight_ih_l0: expected"
    ):
        load_keras_model(tmp_path / "bad.safetensors")
    formats.write_torch_file(tmp_path / "noarch.pt", sd, {"other": 1})
    with pytest.raises(ValueError, match=re.escape("no torch_rnnsin.port architecture")):
        load_keras_model(tmp_path / "noarch.pt")


# --- against Keras itself -----------------------------------------------------------------


def keras_layers(keras):
    Lk = keras.layers
    return {
        "lstm-gru-dense": [Lk.LSTM(4, return_sequences=True), Lk.GRU(3), Lk.Dense(1)],
        "gru-reset-before": [
            Lk.GRU(3, reset_after=False, return_sequences=True),
            Lk.TimeDistributed(Lk.Dense(2, activation="softmax")),
        ],
        "bidirectional": [Lk.Bidirectional(Lk.SimpleRNN(3, activation="relu"), merge_mode="ave")],
    }


@pytest.mark.keras
@pytest.mark.parametrize("which", ["lstm-gru-dense", "gru-reset-before", "bidirectional"])
def test_against_keras_and_back(keras3, tmp_path, which):
    keras = keras3
    rng = np.random.default_rng(5)
    m = keras.Sequential([keras.Input((7, F)), *keras_layers(keras)[which]])
    m.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in m.get_weights()])
    x = rng.normal(size=(3, 7, F)).astype(np.float32)
    want = keras_predict(m, x)
    m.save(tmp_path / "m.keras")
    model = load_keras_model(tmp_path / "m.keras")
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() <= 1e-5
    save_keras_model(model, tmp_path / "back.keras")
    back = keras.saving.load_model(tmp_path / "back.keras")
    assert np.abs(keras_predict(back, x) - want).max() <= 1e-5
    save_keras_model(model, tmp_path / "back.weights.h5")
    m2 = keras.models.model_from_json(json.dumps(model.keras_config()))
    m2.load_weights(tmp_path / "back.weights.h5")
    assert np.abs(keras_predict(m2, x) - want).max() <= 1e-5


@st.composite
def forward_stacks(draw):
    kinds = st.sampled_from(
        [
            ("SimpleRNN", {}),
            ("SimpleRNN", {"activation": "relu"}),
            ("LSTM", {}),
            ("GRU", {}),
            ("GRU", {"reset_after": False}),
        ]
    )
    layers = [
        (k, draw(st.integers(1, 5)), o) for k, o in draw(st.lists(kinds, min_size=1, max_size=3))
    ]
    return layers, draw(st.booleans()), draw(st.integers(1, 4)), draw(st.integers(2, 12))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(forward_stacks(), st.data())
def test_any_forward_stack_continues_from_its_state(case, data):
    spec, rs_last, B, T = case
    model = stack(spec, rs_last=rs_last, seed=T)
    split = data.draw(st.integers(1, T - 1))
    x = torch.from_numpy(np.random.default_rng(T).normal(size=(B, T, F)).astype(np.float32))
    with torch.no_grad():
        full = model(x)
        y1, s1 = model(x[:, :split], return_state=True)
        y2 = model(x[:, split:], state=s1)
    got = torch.cat([y1, y2], dim=1) if rs_last else y2
    assert (got - full).abs().max() <= 1e-6
