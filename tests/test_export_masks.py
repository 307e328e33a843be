"""ONNX export of masked recurrent models over a free time axis (issue 17): onnxruntime
against Keras's predict and against torch at other batch sizes and lengths, with masks
pre-padded, post-padded, holed and all-masked rows; state carried across chunks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from port_helpers import keras_predict

from torch_rnnsin.export.onnx import export_onnx
from torch_rnnsin.port.kinds.recurrent import OwnRNN
from torch_rnnsin.port.model import load_keras_model

SHAPES = [(1, 1), (7, 13), (13, 7), (4, 7)]  # (batch, length)
VOCAB, F = 10, 3


def keep(B: int, T: int, seed: int) -> np.ndarray:
    """(B, T) bool: row 0 pre-padded, 1 post-padded, 2 holed, 3 all masked, the rest random."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(size=(B, T)) < 0.7
    patterns = [
        np.arange(T) >= T // 2,
        np.arange(T) < (T + 1) // 2,
        np.arange(T) % 2 == 1,
        np.zeros(T, bool),
    ]
    for i, p in enumerate(patterns[:B]):
        m[i] = p
    return m


def build(keras, name: str):
    """name -> (Keras model, input kind: 'ids' | 'masking' | 'bool')."""
    L = keras.layers
    if name == "bool_gru":
        x, m = keras.Input((None, F)), keras.Input((None,), dtype="bool")
        return keras.Model([x, m], L.GRU(4, return_sequences=True)(x, mask=m)), "bool"
    if name == "masking_lstm":
        x = keras.Input((None, F))
        return keras.Model(x, L.LSTM(4, return_sequences=True)(L.Masking(0.0)(x))), "masking"
    ids = keras.Input((None,), dtype="int32")
    e = L.Embedding(VOCAB, F, mask_zero=True)(ids)
    layer = {
        "lstm_seq": lambda: L.LSTM(4, return_sequences=True),
        "lstm_last": lambda: L.LSTM(4),
        "gru_seq": lambda: L.GRU(4, return_sequences=True),
        "gru_last": lambda: L.GRU(4),
        "rnn_seq": lambda: L.SimpleRNN(4, return_sequences=True),
        "rnn_last": lambda: L.SimpleRNN(4),
        "rnn_relu_seq": lambda: L.SimpleRNN(4, activation="relu", return_sequences=True),
        "gru_rb_seq": lambda: L.GRU(4, reset_after=False, return_sequences=True),  # OwnRNN
        "lstm_own_seq": lambda: L.LSTM(
            4, recurrent_activation="hard_sigmoid", activation="softsign", return_sequences=True
        ),  # OwnRNN
        "lstm_zero_seq": lambda: L.LSTM(4, return_sequences=True, zero_output_for_mask=True),
        "bidi_lstm": lambda: L.Bidirectional(L.LSTM(4, return_sequences=True)),
        "back_lstm": lambda: L.LSTM(4, return_sequences=True, go_backwards=True),
        "back_gru_last": lambda: L.GRU(4, go_backwards=True),
    }[name]()
    return keras.Model(ids, layer(e)), "ids"


NAMES = [
    "lstm_seq",
    "lstm_last",
    "gru_seq",
    "gru_last",
    "rnn_seq",
    "rnn_last",
    "rnn_relu_seq",
    "gru_rb_seq",
    "lstm_own_seq",
    "lstm_zero_seq",
    "bidi_lstm",
    "back_lstm",
    "back_gru_last",
    "bool_gru",
    "masking_lstm",
]
STREAMABLE = [n for n in NAMES if "bidi" not in n and "back" not in n]


def inputs(kind: str, B: int, T: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    m = keep(B, T, seed)
    if kind == "ids":
        return [np.where(m, rng.integers(1, VOCAB, (B, T)), 0).astype(np.int32)]
    x = rng.uniform(-1, 1, (B, T, F)).astype(np.float32)
    if kind == "masking":
        return [np.where(m[..., None], x, 0.0).astype(np.float32)]
    return [x, m]


@pytest.fixture(scope="session")
def masked(keras3, ort, tmp_path_factory):
    """name -> (Keras model, input kind, ported model, onnxruntime session, ONNX path)."""
    folder = tmp_path_factory.mktemp("masked_onnx")
    rng = np.random.default_rng(3)
    out = {}
    for name in NAMES:
        keras3.utils.set_random_seed(len(name))
        model, kind = build(keras3, name)
        model.set_weights([rng.uniform(-0.8, 0.8, w.shape) for w in model.get_weights()])
        model.save(folder / f"{name}.keras")
        ported = load_keras_model(folder / f"{name}.keras")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the no-state note
            path = export_onnx(ported, folder / f"{name}.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out[name] = (model, kind, ported, sess, path)
    return out


def feed(sess, xs: list[np.ndarray], states: list[np.ndarray]) -> dict:
    names = [i.name for i in sess.get_inputs()]
    return dict(zip(names, [*xs, *states], strict=True))


def worst(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """max |a - b| / max(1, |b|) over matching shapes."""
    assert len(a) == len(b)
    out = 0.0
    for u, v in zip(a, b, strict=True):
        assert u.shape == v.shape, (u.shape, v.shape)
        d = np.abs(u.astype(np.float64) - v) / np.maximum(1.0, np.abs(v))
        out = max(out, float(d.max(initial=0)))
    return out


@pytest.mark.keras
@pytest.mark.parametrize("name", NAMES)
def test_masked_onnx_against_keras_and_torch_free_time(name, masked):
    import onnx

    model, kind, ported, sess, path = masked[name]
    assert any(n.op_type == "Loop" for n in onnx.load(str(path)).graph.node)  # not unrolled
    own = any(isinstance(m, OwnRNN) for m in ported.modules())
    assert own == (name in ("gru_rb_seq", "lstm_own_seq"))  # both kinds of cell covered
    time_dims = [i.shape[1] for i in sess.get_inputs()[: len(ported.inputs)]]
    assert all(isinstance(d, str) for d in time_dims), time_dims  # T free
    sizes = ported.state_sizes if ported.streamable else []
    for seed, (B, T) in enumerate(SHAPES):
        xs = inputs(kind, B, T, seed)
        zeros = [np.zeros((B, h), np.float32) for h in sizes]
        got = sess.run(None, feed(sess, xs, zeros))
        ref = keras_predict(model, xs if len(xs) > 1 else xs[0])
        ref = [np.asarray(r) for r in (ref if isinstance(ref, list) else [ref])]
        assert worst(got[: len(ref)], ref) <= 1e-5, (B, T)
        rng = np.random.default_rng(seed)
        states = [rng.uniform(-0.5, 0.5, (B, h)).astype(np.float32) for h in sizes]
        with torch.no_grad():
            ts = [torch.from_numpy(x) for x in xs]
            if ported.streamable:
                y, new = ported(*ts, state=[torch.from_numpy(s) for s in states], return_state=True)
                want = [y.numpy(), *(s.numpy() for s in new)]
            else:
                want = [ported(*ts).numpy()]
        assert worst(sess.run(None, feed(sess, xs, states)), want) <= 1e-5, (B, T)


@pytest.mark.keras
@pytest.mark.parametrize("name", STREAMABLE)
def test_masked_onnx_two_chunks_equal_one_call(name, masked):
    """State carried: chunk 1 then chunk 2 with state_out fed back == one call (any mask).
    Outputs agree at valid steps; at masked steps before chunk 2's first valid one Keras (and
    this graph) repeat zeros, not chunk 1's last output, so those are left out."""
    _, kind, ported, sess, _ = masked[name]
    assert ported.streamable
    B, T, split = 5, 13, 6
    xs = inputs(kind, B, T, seed=9)
    zeros = [np.zeros((B, h), np.float32) for h in ported.state_sizes]
    whole = sess.run(None, feed(sess, xs, zeros))
    n_y = len(whole) - len(zeros)
    first = sess.run(None, feed(sess, [x[:, :split] for x in xs], zeros))
    second = sess.run(None, feed(sess, [x[:, split:] for x in xs], first[n_y:]))
    assert worst(second[n_y:], whole[n_y:]) <= 1e-5  # the final state
    m = keep(B, T, seed=9)
    y = whole[0]
    if y.ndim == 3:
        both = np.concatenate([first[0], second[0]], 1)
        assert worst([both[m]], [y[m]]) <= 1e-5
        assert m.any()
    else:
        rows = m[:, split:].any(1)  # chunk 2 has a valid step
        assert rows.any()
        assert not rows.all()
        assert worst([second[0][rows]], [y[rows]]) <= 1e-5


@pytest.mark.keras
def test_bool_mask_stays_bool_in_the_graph(masked):
    _, _, _, sess, _ = masked["bool_gru"]
    types = [i.type for i in sess.get_inputs()]
    assert types[:2] == ["tensor(float)", "tensor(bool)"], types
