"""The lesson's result in both frameworks: 1000 shuffled epochs learn the wave.

The longest test (Keras fit alone takes about 2.5 minutes here); its own file so
that pytest-xdist starts it early on one worker while the other runs the rest."""

from __future__ import annotations

import pytest

from torch_rnnsin.config import TrainConfig
from torch_rnnsin.data import make_windows, sine_wave, split_series

pytestmark = pytest.mark.keras


@pytest.mark.slow
def test_both_frameworks_learn_the_wave_with_shuffling(kr, tmp_path):
    """1000 epochs, shuffled: both reach validation loss < 0.001 (the lesson's result)."""
    from torch_rnnsin.run import train_run

    train, test = split_series(sine_wave()["sin_t"].to_numpy())
    (X, y), val = make_windows(train, 2), make_windows(test, 2)
    _, hist = kr.train(X, y, val, epochs=1000, seed=0)
    metrics = train_run(TrainConfig(), tmp_path / "run", progress=False)
    assert hist["val_loss"][-1] < 1e-3, hist["val_loss"][-1]
    assert metrics["val_loss"] < 1e-3
