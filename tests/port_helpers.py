"""Keras configs built by hand and the recurrent maths in NumPy, for the port tests.

The NumPy functions are the equations of each Keras layer written in Keras's own layout
(kernel (F, kH), columns in Keras's gate order), independent of the torch mapping.
"""

from __future__ import annotations

import math

import numpy as np


def layer(cls: str, name: str, **cfg) -> dict:
    return {"class_name": cls, "config": {"name": name, **cfg}}


def sequential(F: int, *layers: dict, T: int | None = None) -> dict:
    first = layer("InputLayer", "input_layer", batch_shape=[None, T, F])
    return {"class_name": "Sequential", "config": {"name": "m", "layers": [first, *layers]}}


def keras_arrays(kind: str, F: int, H: int, rng, use_bias=True, reset_after=True, scale=0.8):
    """Random arrays in Keras's get_weights() order and shapes."""
    k = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3, "Dense": 1}[kind]
    shapes = [(F, k * H)] if kind == "Dense" else [(F, k * H), (H, k * H)]
    if use_bias:
        shapes.append((2, 3 * H) if kind == "GRU" and reset_after else (k * H,))
    return [rng.uniform(-scale, scale, size=s).astype(np.float32) for s in shapes]


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def np_recurrent(kind, x, arrays, H, *, activation="tanh", use_bias=True, reset_after=True):
    """x (B, T, F) float64 -> outputs (B, T, H) and the final state list; Keras's equations."""
    W, U = arrays[0].astype(np.float64), arrays[1].astype(np.float64)
    k = W.shape[1] // H
    b = (
        arrays[2].astype(np.float64)
        if use_bias
        else np.zeros((2, k * H) if kind == "GRU" and reset_after else k * H)
    )
    B = x.shape[0]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    outs = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        if kind == "SimpleRNN":
            z = xt @ W + h @ U + b
            h = np.tanh(z) if activation == "tanh" else np.maximum(z, 0)
        elif kind == "LSTM":
            g = xt @ W + h @ U + b
            i, f, cc, o = (g[:, j * H : (j + 1) * H] for j in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(cc)
            h = sigmoid(o) * np.tanh(c)
        elif reset_after:  # columns z | r | h, bias rows [input; recurrent]
            xi = xt @ W + b[0]
            hi = h @ U + b[1]
            z = sigmoid(xi[:, :H] + hi[:, :H])
            r = sigmoid(xi[:, H : 2 * H] + hi[:, H : 2 * H])
            n = np.tanh(xi[:, 2 * H :] + r * hi[:, 2 * H :])
            h = z * h + (1 - z) * n
        else:  # reset gate applied before the recurrent matmul
            xi = xt @ W + b
            z = sigmoid(xi[:, :H] + h @ U[:, :H])
            r = sigmoid(xi[:, H : 2 * H] + h @ U[:, H : 2 * H])
            n = np.tanh(xi[:, 2 * H :] + (r * h) @ U[:, 2 * H :])
            h = z * h + (1 - z) * n
        outs.append(h)
    state = [h, c] if kind == "LSTM" else [h]
    return np.stack(outs, axis=1), state


def np_layer(kind, x, arrays, H, *, return_sequences=False, go_backwards=False, **opts):
    """One Keras recurrent layer: go_backwards reads reversed (outputs stay reversed)."""
    seq, _ = np_recurrent(kind, x[:, ::-1] if go_backwards else x, arrays, H, **opts)
    return seq if return_sequences else seq[:, -1]


NP_ACTIVATIONS = {
    "linear": lambda v: v,
    "relu": lambda v: np.maximum(v, 0),
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "softmax": lambda v: (
        np.exp(v - v.max(-1, keepdims=True))
        / np.exp(v - v.max(-1, keepdims=True)).sum(-1, keepdims=True)
    ),
    "elu": lambda v: np.where(v > 0, v, np.expm1(v)),
    "selu": lambda v: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * np.expm1(v)),
    "softplus": lambda v: np.log1p(np.exp(v)),
    "softsign": lambda v: v / (1 + np.abs(v)),
    "swish": lambda v: v * sigmoid(v),
    "silu": lambda v: v * sigmoid(v),
    "gelu": np.vectorize(lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2)))),
    "exponential": np.exp,
}


def one_error_line(err: str) -> str:
    """A CLI's stderr: exactly one line, "error: ...", no traceback; returns it."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def keras_predict(model, x, eager: bool = True):
    """Keras's own ``predict``, by default run eagerly: the same layer calls, with no graph
    traced per model (a traced predict costs ~0.3 s of tracing per tiny model).

    ``eager=False`` for a channels_first Conv1D in Keras 3.15 (TF backend, CPU): its eager
    call is off a NumPy convolution by ~1.1, its traced predict (and our port) agree to 5e-7.
    """
    if eager and not model.run_eagerly:  # compiled once: a stateful model keeps its state
        model.compile(run_eagerly=True)
    if model.run_eagerly:  # predict's step on one batch, without its data pipeline: 1/3 the time
        return model.predict_on_batch(x)
    return model.predict(x, verbose=0)
