"""How a prediction is scored: one convention for every command, test and report."""

from __future__ import annotations

import numpy as np


def prediction_mse(pred: np.ndarray, values: np.ndarray, mode: str, seq_len: int) -> float:
    """Test MSE over the entries a mode predicts: stateless from index ``seq_len``
    (before it, NaN), stateful from index 1 (``pred[0]`` is ``x_0`` itself). float64."""
    start = {"stateless": seq_len, "stateful": 1}[mode]
    err = np.asarray(pred[start:], np.float64) - np.asarray(values[start:], np.float64)
    return float(np.mean(err**2))
