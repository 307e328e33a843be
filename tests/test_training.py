"""Training: the loss falls; Lightning, the plain loop, torch's hand-derived and
autograd gradients and the hand-derived NumPy gradients are the same optimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_keras_weights

from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.convert import keras_to_torch, load_keras_weights, torch_to_keras
from torch_rnnsin.lesson.data import make_windows, sine_wave, split_series
from torch_rnnsin.lesson.model import SinRNN
from torch_rnnsin.lesson.numpy_ref import predict_stateless_numpy, train_numpy
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.training import stateless_epoch


def _data(cycles=100, noise=0.0, seq_len=2):
    train, test = split_series(sine_wave(10, cycles, noise, seed=1)["sin_t"].to_numpy())
    return make_windows(train, seq_len), make_windows(test, seq_len)


@pytest.mark.parametrize("grads", ["hand", "autograd"])
@pytest.mark.parametrize(("hidden", "seq_len"), [(1, 2), (3, 4)])
def test_torch_training_equals_hand_derived_numpy_gradients(hidden, seq_len, grads):
    (X, y), _ = _data(noise=0.3, seq_len=seq_len)
    init = random_keras_weights(hidden, seed=hidden, scale=0.5)
    want, np_losses = train_numpy(init, X, y, batch_size=128, epochs=15)
    model = keras_to_torch(init)
    opt = KerasRMSprop([p for p in model.parameters() if p.requires_grad])
    losses = [
        stateless_epoch(model, opt, torch.from_numpy(X), torch.from_numpy(y), 128, grads=grads)
        for _ in range(15)
    ]
    for a, b in zip(torch_to_keras(model), want, strict=True):
        assert np.abs(a - b).max() <= 1e-5
    np.testing.assert_allclose(losses, np_losses, rtol=1e-4)


def test_short_lightning_run_lowers_the_loss(tmp_path):
    from torch_rnnsin.lesson.run import train_run

    m = train_run(
        TrainConfig(cycles=100, epochs=60, batch_size=50, lr=0.01), tmp_path / "r", progress=False
    )
    import csv

    with open(tmp_path / "r" / "history.csv", newline="") as f:
        hist = list(csv.DictReader(f))
    assert len(hist) == 60
    assert float(hist[-1]["train_loss"]) < 0.5 * float(hist[0]["train_loss"])
    assert m["val_loss"] == pytest.approx(float(hist[-1]["val_loss"]))


def test_lightning_equals_plain_loop_bit_for_bit(tmp_path):
    """train.py's Lightning path and the benchmark's plain loop (bench/plain_loop.py
    itself) run the same numbers."""
    from bench.plain_loop import train
    from torch_rnnsin.lesson.run import train_run

    cfg = TrainConfig(cycles=100, epochs=25, batch_size=128, noise=0.2, seed=4)
    train_run(cfg, tmp_path / "r", progress=False)
    got = load_keras_weights(tmp_path / "r" / "keras_weights.npz")
    model, _, _ = train(cfg)
    torch.manual_seed(cfg.seed)
    init = torch_to_keras(SinRNN(cfg.hidden))
    assert max(np.abs(a - b).max() for a, b in zip(got, init, strict=True)) > 1e-3
    for a, b in zip(torch_to_keras(model), got, strict=True):
        assert np.array_equal(a, b)


def test_val_loss_is_the_numpy_witness_mse():
    """The val_loss a training step records (after its epoch's updates) is the test
    windows' MSE: the same number as the NumPy witness's stateless prediction of the
    test series with the weights the epoch ends on, scored independently."""
    import lightning.pytorch as pl

    from torch_rnnsin.lesson.lightning.datamodule import SineDataModule
    from torch_rnnsin.lesson.lightning.lit_module import SinRNNModule

    cfg = TrainConfig(cycles=60)
    dm, module = SineDataModule(cfg), SinRNNModule(seed=3)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    test = dm.test_values
    pred, _ = predict_stateless_numpy(torch_to_keras(module.model), test, cfg.seq_len)
    L = cfg.seq_len
    want = float(np.mean((pred[L:] - test[L:].astype(np.float32).astype(np.float64)) ** 2))
    assert module.history[-1]["val_loss"] == pytest.approx(want, rel=1e-5)


def test_progress_line_on_a_terminal(tmp_path, capsys):
    from torch_rnnsin.lesson.run import train_run

    train_run(TrainConfig(cycles=60, epochs=12), tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    assert "\repoch    12/12  loss " in err
    assert err.endswith("\n")
