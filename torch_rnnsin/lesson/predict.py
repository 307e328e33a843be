"""The lesson's two ways to predict a series, aligned with the series.

stateless: pred[t] starts from h = 0 at x_{t-L} and reads x_{t-L} .. x_{t-1};
           entries 0 .. L-1 are NaN.
stateful:  one state carried through the whole series from h = 0;
           pred[t] = dense(h_{t-1}), pred[0] = x_0, hidden[0] = 0.
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.errors import Refused
from .data import as_series, make_windows
from .model import SinRNN


def _params(model: SinRNN) -> tuple[torch.device, torch.dtype]:
    p = model.dense.weight
    return p.device, p.dtype


@torch.no_grad()
def predict_stateless(
    model: SinRNN, values: np.ndarray, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (pred (n,), hidden (n, H)) as float32, NaN before index seq_len."""
    X, _ = make_windows(values, seq_len)  # (N, L, 1)
    device, dtype = _params(model)
    y, h = model(torch.as_tensor(X, device=device, dtype=dtype))  # (N, 1), (N, H)
    n = len(values)
    pred = np.full(n, np.nan, np.float32)
    hidden = np.full((n, model.hidden_size), np.nan, np.float32)
    pred[seq_len:] = y[:, 0].cpu().numpy()
    hidden[seq_len:] = h.cpu().numpy()
    return pred, hidden


@torch.no_grad()
def predict_stateful(model: SinRNN, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the RNN over the whole series (no Python loop over time).

    Returns (pred (n,), hidden (n, H)) as float32.
    """
    values = as_series(values).astype(np.float32)
    n = len(values)
    if n == 0:
        raise Refused("values is empty; stateful prediction needs at least one point")
    pred = np.empty(n, np.float32)
    hidden = np.zeros((n, model.hidden_size), np.float32)  # hidden[0] = h_{-1} = 0
    pred[0] = values[0]
    if n > 1:
        device, dtype = _params(model)
        x = torch.as_tensor(values[:-1], device=device, dtype=dtype).view(1, -1, 1)  # (1, n-1, 1)
        y, states, _ = model.forward_sequence(x)  # (1, n-1, 1), (1, n-1, H)
        pred[1:] = y[0, :, 0].cpu().numpy()
        hidden[1:] = states[0].cpu().numpy()
    return pred, hidden
