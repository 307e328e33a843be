"""The "by hand" witness: both prediction modes as plain NumPy loops over the two
equations, from the five Keras-order arrays. No torch, no Keras; float64.

    h_t      = tanh(x_t * w_x + h_{t-1} @ w_h + b_1)
    x*_{t+1} = h_t @ w_2 + b_2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unpack(weights: Sequence[np.ndarray]):
    kernel, recurrent, bias, dense_kernel, dense_bias = (np.asarray(w, np.float64) for w in weights)
    return kernel, recurrent, bias, dense_kernel, dense_bias


def rnn_step(weights: Sequence[np.ndarray], x: float, h: np.ndarray) -> np.ndarray:
    kernel, recurrent, bias, _, _ = _unpack(weights)
    return np.tanh(x * kernel[0] + h @ recurrent + bias)


def predict_stateless_numpy(
    weights: Sequence[np.ndarray], values: np.ndarray, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """For every t >= L: h = 0, run over x_{t-L} .. x_{t-1}, predict x_t."""
    kernel, recurrent, bias, dense_kernel, dense_bias = _unpack(weights)
    values = np.asarray(values, np.float64)
    n, H = len(values), recurrent.shape[0]
    pred = np.full(n, np.nan)
    hidden = np.full((n, H), np.nan)
    for t in range(seq_len, n):
        h = np.zeros(H)
        for x in values[t - seq_len : t]:
            h = np.tanh(x * kernel[0] + h @ recurrent + bias)
        hidden[t] = h
        pred[t] = (h @ dense_kernel + dense_bias)[0]
    return pred, hidden


def predict_stateful_numpy(
    weights: Sequence[np.ndarray], values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One state carried from h = 0 through the whole series; pred[0] = x_0."""
    kernel, recurrent, bias, dense_kernel, dense_bias = _unpack(weights)
    values = np.asarray(values, np.float64)
    n, H = len(values), recurrent.shape[0]
    pred = np.empty(n)
    hidden = np.zeros((n, H))
    pred[0] = values[0]
    h = np.zeros(H)
    for t in range(1, n):
        h = np.tanh(values[t - 1] * kernel[0] + h @ recurrent + bias)
        hidden[t] = h
        pred[t] = (h @ dense_kernel + dense_bias)[0]
    return pred, hidden
