"""ConvLSTM1D / ConvLSTM2D against Keras itself: valid / same padding, dilation, strides,
return_state [y, h, c], initial_state from other layers, go_backwards, masks given as a call
argument, stateful; Keras 3 .keras and Keras 2 (tf_keras) .h5 files, each ported and
compared within 1e-5, Keras 3 files also written back and predicted by Keras. And the
state carried between chunks: two chunks equal one call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from port_helpers import keras_predict

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.model import load_keras_model, save_keras_model

T = 5


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want).max()
    assert err <= 1e-5 * max(1.0, float(np.abs(want).max())), err


def as_list(y) -> list[np.ndarray]:
    return [np.asarray(v) for v in y] if isinstance(y, list | tuple) else [np.asarray(y)]


def port_and_compare(mod, tmp_path, model, xs: list[np.ndarray], seed: int = 4):
    """Random weights; Keras's predict == the port's (and, Keras 3, the written-back file's)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.uniform(-0.8, 0.8, size=w.shape).astype(np.float32) for w in model.get_weights()]
    )
    want = as_list(keras_predict(model, xs))
    path = tmp_path / ("m.keras" if mod.__name__ == "keras" else "m.h5")
    model.save(path)
    ported = load_keras_model(path)
    with torch.no_grad():
        got = as_list(ported(*(torch.from_numpy(x) for x in xs)))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        close(g.numpy() if isinstance(g, torch.Tensor) else g, w)
    if mod.__name__ == "keras":
        again = mod.models.load_model(save_keras_model(ported, tmp_path / "back.keras"))
        for g, w in zip(as_list(keras_predict(again, xs)), want, strict=True):
            close(g, w)
    return ported


CASES = {
    "1d-valid": ((T, 7, 2), lambda L: L.ConvLSTM1D(3, 3)),
    "1d-same-seq-dilated": (
        (T, 7, 2),
        lambda L: L.ConvLSTM1D(3, 3, padding="same", dilation_rate=2, return_sequences=True),
    ),
    "1d-nobias-relu": (
        (T, 5, 2),
        lambda L: L.ConvLSTM1D(
            2, 2, use_bias=False, activation="relu", recurrent_activation="hard_sigmoid"
        ),
    ),
    "2d-same-seq": (
        (4, 5, 4, 2),
        lambda L: L.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True),
    ),
    "2d-valid": ((4, 5, 4, 2), lambda L: L.ConvLSTM2D(2, 3)),
    "1d-strides-valid-state": (
        (T, 9, 2),
        lambda L: L.ConvLSTM1D(3, 3, strides=2, return_sequences=True, return_state=True),
    ),
    "2d-strides-same-backwards": (
        (4, 7, 6, 2),
        lambda L: L.ConvLSTM2D(
            2, (3, 2), strides=(2, 3), padding="same", go_backwards=True, return_sequences=True
        ),
    ),
    "1d-backwards-state": (
        (T, 6, 2),
        lambda L: L.ConvLSTM1D(2, 2, padding="same", go_backwards=True, return_state=True),
    ),
}


def case_check(mod, tmp_path, case: str, free_time: bool = False):
    shape, make = CASES[case]
    inp = mod.Input(shape=(None, *shape[1:]) if free_time else shape)
    x = np.random.default_rng(2).normal(size=(2, *shape)).astype(np.float32)
    return port_and_compare(mod, tmp_path, mod.Model(inp, make(mod.layers)(inp)), [x])


@pytest.mark.parametrize("case", list(CASES))
def test_conv_lstm_keras3(keras3, tmp_path, case):
    case_check(keras3, tmp_path, case)


@pytest.mark.parametrize(
    "case", ["1d-same-seq-dilated", "1d-nobias-relu", "2d-valid", "1d-strides-valid-state",
             "2d-strides-same-backwards"]
)  # fmt: skip
def test_conv_lstm_keras2(keras2, tmp_path, case):
    case_check(keras2, tmp_path, case)


def initial_state_model(mod):
    """ConvLSTM1D's initial [h, c] computed by other layers from a second input."""
    L = mod.layers
    x, s = mod.Input(shape=(T, 6, 2)), mod.Input(shape=(6, 3))
    h0, c0 = L.Dense(2, activation="tanh")(s), L.Conv1D(2, 3, padding="same")(s)
    y, h, c = L.ConvLSTM1D(2, 3, padding="same", return_sequences=True, return_state=True)(
        x, initial_state=[h0, c0]
    )
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(3, T, 6, 2)), rng.normal(size=(3, 6, 3))]
    return mod.Model([x, s], [y, h, c]), [a.astype(np.float32) for a in xs]


@pytest.mark.parametrize("which", ["keras3", "keras2"])
def test_initial_state_from_other_layers(which, request, tmp_path):
    mod = request.getfixturevalue(which)
    model, xs = initial_state_model(mod)
    ported = port_and_compare(mod, tmp_path, model, xs)
    assert not ported.streamable
    assert "initial state comes from another layer" in ported.why_not_streamable()


def mask_model(mod, zero: bool, seq: bool):
    L = mod.layers
    x, m = mod.Input(shape=(T, 5, 2)), mod.Input(shape=(T,), dtype="bool")
    y = L.ConvLSTM1D(2, 2, return_sequences=seq, zero_output_for_mask=zero)(x, mask=m)
    rng = np.random.default_rng(6)
    mask = np.ones((3, T), bool)
    mask[0, 3:] = False  # padding at the end
    mask[1, :2] = False  # at the start
    mask[2, 2] = False  # a hole
    return mod.Model([x, m], y), [rng.normal(size=(3, T, 5, 2)).astype(np.float32), mask]


@pytest.mark.parametrize(("zero", "seq"), [(False, True), (True, True), (False, False)])
def test_mask_argument_keras3(keras3, tmp_path, zero, seq):
    model, xs = mask_model(keras3, zero, seq)
    port_and_compare(keras3, tmp_path, model, xs)


def test_mask_argument_keras2(keras2, tmp_path):
    model, xs = mask_model(keras2, False, True)
    port_and_compare(keras2, tmp_path, model, xs)


def test_stateful_is_accepted(keras3, tmp_path):
    inp = keras3.Input(batch_shape=(2, T, 5, 2))
    model = keras3.Model(inp, keras3.layers.ConvLSTM1D(2, 3, stateful=True)(inp))
    x = np.random.default_rng(8).normal(size=(2, T, 5, 2)).astype(np.float32)
    ported = port_and_compare(keras3, tmp_path, model, [x])
    assert ported.streamable


@pytest.mark.parametrize("case", ["1d-same-seq-dilated", "1d-strides-valid-state", "2d-valid"])
def test_two_chunks_with_the_state_equal_one_call(keras3, tmp_path, case):
    ported = case_check(keras3, tmp_path, case, free_time=True)
    shape = CASES[case][0]
    assert ported.streamable
    assert ported.state_sizes == [ported.layers[-1].filters] * 2
    x = torch.from_numpy(np.random.default_rng(9).normal(size=(2, 7, *shape[1:])).astype("f4"))
    with torch.no_grad():
        full, s_full = ported(x, return_state=True)
        y1, s1 = ported(x[:, :3], return_state=True)
        y2, s2 = ported(x[:, 3:], state=s1, return_state=True)
    want = ported.layers[-1].state_shapes
    assert [tuple(s.shape[1:]) for s in s2] == list(want)
    if isinstance(full, tuple):  # return_state: [y, h, c]
        full, y1, y2 = full[0], y1[0], y2[0]
    if full.dim() == len(shape) + 1:  # a sequence
        assert (torch.cat([y1, y2], 1) - full).abs().max() <= 1e-6
    else:
        assert (y2 - full).abs().max() <= 1e-6
    for a, b in zip(s2, s_full, strict=True):
        assert (a - b).abs().max() <= 1e-6
    with pytest.raises(Refused, match=r"state\[0\]: expected shape"):
        ported(x, state=[s[:, 0] for s in s1])


def test_backwards_is_not_streamed(keras3, tmp_path):
    ported = case_check(keras3, tmp_path, "1d-backwards-state")
    assert not ported.streamable
    with pytest.raises(Refused, match="go_backwards"):
        ported(torch.zeros(1, T, 6, 2), return_state=True)


@pytest.mark.parametrize(
    ("option", "make"),
    [
        ("data_format", lambda L: L.ConvLSTM1D(2, 2, data_format="channels_first")),
    ],
)
def test_refused_options(keras3, tmp_path, option, make):
    inp = keras3.Input(shape=(T, 6, 2))
    keras3.Model(inp, make(keras3.layers)(inp)).save(tmp_path / "m.keras")
    with pytest.raises(Refused) as e:
        load_keras_model(tmp_path / "m.keras")
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert "ConvLSTM1D" in msg, msg
    assert option in msg, msg
