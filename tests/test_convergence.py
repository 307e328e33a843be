"""The lesson's result in both frameworks: shuffled epochs learn the wave.

Half the lesson's 1000 epochs already bring both Keras and torch below a
validation loss of 1e-3 (Keras about 4e-4, torch about 7e-4 at epoch 500 with
seed 0), so the test runs 500: the longest test (Keras's fit is most of it),
in its own file so that pytest-xdist starts it early on one worker."""

from __future__ import annotations

import pytest

from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.data import make_windows, sine_wave, split_series

pytestmark = pytest.mark.keras
EPOCHS = TrainConfig.epochs // 2


@pytest.mark.slow
def test_both_frameworks_learn_the_wave_with_shuffling(kr, tmp_path):
    """Shuffled, the lesson's settings but half its epochs: both reach validation loss
    < 0.001 (the lesson's result)."""
    from torch_rnnsin.lesson.run import train_run

    train, test = split_series(sine_wave()["sin_t"].to_numpy())
    (X, y), val = make_windows(train, 2), make_windows(test, 2)
    _, hist = kr.train(X, y, val, epochs=EPOCHS, seed=0)
    metrics = train_run(TrainConfig(epochs=EPOCHS), tmp_path / "run", progress=False)
    assert len(hist["val_loss"]) == EPOCHS
    assert metrics["epochs"] == EPOCHS
    assert hist["val_loss"][-1] < 1e-3, hist["val_loss"][-1]
    assert metrics["val_loss"] < 1e-3
