"""The "by hand" witness: both prediction modes as plain NumPy loops over the two
equations, from the five Keras-order arrays. No torch, no Keras; float64.

    h_t      = tanh(x_t * w_x + h_{t-1} @ w_h + b_1)
    x*_{t+1} = h_t @ w_2 + b_2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .config import TrainConfig

DEFAULT = TrainConfig()  # the lesson's reference run


def _unpack(weights: Sequence[np.ndarray]):
    kernel, recurrent, bias, dense_kernel, dense_bias = (np.asarray(w, np.float64) for w in weights)
    return kernel, recurrent, bias, dense_kernel, dense_bias


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


def train_numpy(
    weights: Sequence[np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = DEFAULT.batch_size,
    epochs: int = 1,
    lr: float = DEFAULT.lr,
    rho: float = 0.9,
    eps: float = 1e-7,
    shuffle_seed: int | None = None,
) -> tuple[list[np.ndarray], list[float]]:
    """Stateless training with hand-derived gradients (BPTT through the window) and
    Keras's RMSprop, in float32. X (N, L, 1), y (N, 1). ``shuffle_seed=None`` keeps
    the window order (Keras ``shuffle=False``). Returns the weights and per-epoch losses."""
    w = [np.array(a, np.float32) for a in weights]  # kernel, recurrent, bias, dense k, dense b
    v = [np.zeros_like(a) for a in w]
    rng = None if shuffle_seed is None else np.random.default_rng(shuffle_seed)
    N, L = X.shape[:2]
    x_all, y_all = X[:, :, 0].astype(np.float32), y.astype(np.float32)  # (N, L), (N, 1)
    losses = []
    for _ in range(epochs):
        order = np.arange(N) if rng is None else rng.permutation(N)
        total = 0.0
        for start in range(0, N, batch_size):
            idx = order[start : start + batch_size]
            xb, yb = x_all[idx], y_all[idx]  # (b, L), (b, 1)
            b = len(idx)
            kernel, recurrent, bias, dk, db = w
            hs = [np.zeros((b, recurrent.shape[0]), np.float32)]  # h_{-1} = 0
            for t in range(L):
                hs.append(np.tanh(xb[:, t : t + 1] * kernel[0] + hs[-1] @ recurrent + bias))
            err = hs[-1] @ dk + db - yb  # (b, 1)
            total += float(np.mean(err**2)) * b
            dy = (2.0 / b) * err  # d loss / d prediction
            g_dk, g_db = hs[-1].T @ dy, dy.sum(0)
            dh = dy @ dk.T  # (b, H)
            g_k, g_r, g_b = np.zeros_like(kernel), np.zeros_like(recurrent), np.zeros_like(bias)
            for t in range(L, 0, -1):  # back through the window
                da = dh * (1.0 - hs[t] ** 2)  # through tanh
                g_k += xb[:, t - 1 : t].T @ da
                g_r += hs[t - 1].T @ da
                g_b += da.sum(0)
                dh = da @ recurrent.T
            for i, g in enumerate((g_k, g_r, g_b, g_dk, g_db)):
                v[i] = rho * v[i] + (1 - rho) * g * g
                w[i] = w[i] - lr * g / np.sqrt(v[i] + eps)
        losses.append(total / N)
    return w, losses
