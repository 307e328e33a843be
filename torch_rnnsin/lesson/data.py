"""The lesson's data: a (phase-noisy) sine wave, its train/test split and its windows.

Pure NumPy/pandas; no torch here, so the CLI can validate and the tests can
build data without paying for heavy imports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common.errors import Refused


def as_series(values: np.ndarray, name: str = "values") -> np.ndarray:
    """``values`` as a finite 1-D float64 array, or a Refused naming the bad entry."""
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise Refused(f"{name} must be numeric: {e}") from None
    if values.ndim != 1:
        raise Refused(f"{name} must be a 1-D series, got shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise Refused(f"{name} contains {values[i]} at index {i}; the series must be finite")
    return values


def sine_wave(
    steps_per_cycle: int = 10,
    number_of_cycles: int = 500,
    random_factor: float = 0.0,
    seed: int | None = None,
) -> pd.DataFrame:
    """The reference example's generator: ``steps_per_cycle * number_of_cycles + 1`` points.

    ``sin_t = sin(t * 2*pi / steps_per_cycle + u_t * random_factor)`` with
    ``u_t ~ Uniform(-1, 1)``: the noise is on the phase, not added to the value.
    """
    if int(steps_per_cycle) != steps_per_cycle or steps_per_cycle < 1:
        raise Refused(f"steps_per_cycle must be an integer >= 1, got {steps_per_cycle!r}")
    if int(number_of_cycles) != number_of_cycles or number_of_cycles < 1:
        raise Refused(f"number_of_cycles must be an integer >= 1, got {number_of_cycles!r}")
    if not np.isfinite(random_factor) or random_factor < 0:
        raise Refused(f"random_factor must be a finite number >= 0, got {random_factor!r}")
    t = np.arange(int(steps_per_cycle) * int(number_of_cycles) + 1)
    phase = t * 2 * np.pi / steps_per_cycle
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=len(t))
    return pd.DataFrame(
        {"t": t, "sin_t": np.sin(phase + u * random_factor), "sin_t_clean": np.sin(phase)}
    )


def split_series(values: np.ndarray, test_size: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """First ``int(len * (1 - test_size))`` points train, the rest test (no shuffling)."""
    if not (0.0 < test_size < 1.0):
        raise Refused(f"test_size must be in the open interval (0, 1), got {test_size!r}")
    values = np.asarray(values)
    ntr = int(len(values) * (1 - test_size))
    return values[:ntr], values[ntr:]


def make_windows(values: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``X[i] = values[i : i+seq_len]``, ``y[i] = values[i+seq_len]``.

    Returns float32 arrays of shapes ``(N, seq_len, 1)`` and ``(N, 1)`` with
    ``N = len(values) - seq_len``.
    """
    values = as_series(values)
    if int(seq_len) != seq_len or seq_len < 1:
        raise Refused(f"seq_len must be an integer >= 1, got {seq_len!r}")
    if seq_len >= len(values):
        raise Refused(
            f"seq_len {seq_len} leaves no window in a series of {len(values)} points "
            f"(needs seq_len <= {len(values) - 1})"
        )
    values = values.astype(np.float32)
    n = len(values) - seq_len
    # A strided view, copied: (N, seq_len) without a Python loop.
    X = np.lib.stride_tricks.sliding_window_view(values, seq_len)[:n].copy()
    y = values[seq_len:].copy()
    return X[:, :, None], y[:, None]  # (N, L, 1), (N, 1)


def make_stream_chunks(
    values: np.ndarray, seq_len: int, streams: int, targets: str = "last"
) -> tuple[np.ndarray, np.ndarray]:
    """Batches for stateful (truncated-BPTT) training, Keras ``stateful=True`` style.

    The series is cut into ``streams`` contiguous streams of
    ``S = len(values) // streams`` points each (the ``len(values) % streams``
    leftover points at the end are dropped). Chunk ``k`` of stream ``i`` is
    ``stream_i[k*L : (k+1)*L]``; there are ``K = (S - 1) // L`` chunks a stream,
    so every chunk has a next point to predict. Batch ``k`` holds chunk ``k`` of
    every stream, in stream order, so sample ``i`` of batch ``k+1`` continues
    sample ``i`` of batch ``k``.

    ``targets="last"``: one target a chunk, the point after it (Keras
    ``return_sequences=False``), shape ``(K, B, 1)``. ``targets="seq"``: the
    next point at every step (``return_sequences=True``), shape ``(K, B, L, 1)``.
    Returns ``X`` of shape ``(K, B, L, 1)`` and the targets.
    """
    values = as_series(values).astype(np.float32)
    if int(seq_len) != seq_len or seq_len < 1:
        raise Refused(f"seq_len must be an integer >= 1, got {seq_len!r}")
    if int(streams) != streams or streams < 1:
        raise Refused(f"streams must be an integer >= 1, got {streams!r}")
    if targets not in ("last", "seq"):
        raise Refused(f"targets must be 'last' or 'seq', got {targets!r}")
    S = len(values) // streams
    K = (S - 1) // seq_len
    if K < 1:
        raise Refused(
            f"{streams} streams of {S} points leave no chunk of seq_len {seq_len} "
            f"(each stream needs at least seq_len + 1 = {seq_len + 1} points)"
        )
    stream = values[: streams * S].reshape(streams, S)  # (B, S)
    X = stream[:, : K * seq_len].reshape(streams, K, seq_len).transpose(1, 0, 2)  # (K, B, L)
    if targets == "last":
        y = stream[:, seq_len : (K + 1) * seq_len : seq_len].T[:, :, None]  # (K, B, 1)
    else:
        y = stream[:, 1 : K * seq_len + 1].reshape(streams, K, seq_len).transpose(1, 0, 2)
        y = y[..., None]  # (K, B, L, 1)
    return np.ascontiguousarray(X[..., None]), np.ascontiguousarray(y)


def wave_parts(
    steps_per_cycle: int, cycles: int, noise: float, seed: int | None, test_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """The (noisy) series ``sin_t``, split into its train and test parts."""
    series = sine_wave(steps_per_cycle, cycles, noise, seed=seed)["sin_t"].to_numpy()
    return split_series(series, test_size)
