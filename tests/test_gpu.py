"""CUDA checks, run by scripts/gpu_check.sh on a machine with a GPU; skipped (with
the reason shown) where there is none."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_keras_weights

from torch_rnnsin.lesson.convert import keras_to_torch, torch_to_keras
from torch_rnnsin.lesson.data import make_windows, sine_wave, split_series
from torch_rnnsin.lesson.numpy_ref import predict_stateful_numpy, predict_stateless_numpy
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.predict import predict_stateful, predict_stateless
from torch_rnnsin.lesson.training import stateless_epoch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.mark.parametrize(("hidden", "seq_len"), [(1, 2), (3, 5)])
def test_cuda_predictions_equal_numpy_witness(hidden, seq_len):
    values = sine_wave(10, 30, 0.2, seed=1)["sin_t"].to_numpy()
    w = random_keras_weights(hidden, seed=hidden)
    model = keras_to_torch(w).cuda()
    for got, want in (
        (predict_stateless(model, values, seq_len), predict_stateless_numpy(w, values, seq_len)),
        (predict_stateful(model, values), predict_stateful_numpy(w, values)),
    ):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_cuda_training_equals_cpu_training():
    train, _ = split_series(sine_wave(10, 100, 0.1, seed=2)["sin_t"].to_numpy())
    X, y = (torch.from_numpy(a) for a in make_windows(train, 2))
    init = random_keras_weights(1, seed=4, scale=0.5)
    out = []
    for dev in ("cpu", "cuda"):
        m = keras_to_torch(init).to(dev)
        opt = KerasRMSprop([p for p in m.parameters() if p.requires_grad])
        for _ in range(50):
            stateless_epoch(m, opt, X.to(dev), y.to(dev), 128)
        out.append(torch_to_keras(m))
    for a, b in zip(*out, strict=True):
        assert np.abs(a - b).max() <= 1e-4


def test_lightning_on_gpu(tmp_path):
    from torch_rnnsin.lesson.config import TrainConfig
    from torch_rnnsin.lesson.run import train_run

    m = train_run(
        TrainConfig(cycles=60, epochs=20, accelerator="gpu"), tmp_path / "r", progress=False
    )
    assert np.isfinite(m["stateless_mse"])
    assert m["epochs"] == 20
