"""Stateful (truncated-BPTT) training: torch equals Keras's stateful=True fit, and a
model trained inside the study's batch (hand-derived gradients) equals the same
model trained alone by train.py's code (autograd here, so the two share nothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_keras_weights, run_cli

from torch_rnnsin.lesson.convert import keras_to_torch, load_keras_weights, torch_to_keras
from torch_rnnsin.lesson.data import make_stream_chunks, make_windows, sine_wave, split_series
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.study import trainer
from torch_rnnsin.lesson.study.groups import init_weights
from torch_rnnsin.lesson.training import stateful_epoch, stateless_epoch


def _train(noise=0.0, seed=0, cycles=100):
    return split_series(sine_wave(10, cycles, noise, seed=seed)["sin_t"].to_numpy())[0]


def _alone_stateful(init, X, y, epochs, grads="hand"):
    model = keras_to_torch(init)
    opt = KerasRMSprop([p for p in model.parameters() if p.requires_grad])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    losses = [stateful_epoch(model, opt, Xt, yt, grads=grads) for _ in range(epochs)]
    return torch_to_keras(model), losses


@pytest.mark.keras
@pytest.mark.parametrize(
    ("targets", "seq_len", "hidden"), [("last", 2, 1), ("seq", 3, 1), ("seq", 2, 3)]
)
def test_stateful_training_matches_keras(kr, targets, seq_len, hidden):
    X, y = make_stream_chunks(_train(noise=0.1), seq_len, streams=5, targets=targets)
    init = random_keras_weights(hidden, seed=seq_len, scale=0.5)
    kmodel, hist = kr.train_stateful(X, y, hidden=hidden, epochs=8, initial_weights=init)
    got, losses = _alone_stateful(init, X, y, 8)
    moved = max(np.abs(a - b).max() for a, b in zip(got, init, strict=True))
    assert moved > 1e-3
    for a, b in zip(got, kmodel.get_weights(), strict=True):
        assert np.abs(a - b).max() <= 1e-5
    np.testing.assert_allclose(losses, hist["loss"], rtol=1e-4)


@pytest.mark.keras
def test_keras_state_is_reset_at_each_epoch_start(kr):
    """Keras 3 has no Model.reset_states(): the callback resets each RNN layer."""
    from keras_ref.model import ResetStatesEachEpoch

    m = kr.define_model(2, batch_size=3, stateful=True)
    m.predict_on_batch(np.ones((3, 2, 1), np.float32))
    state = m.get_layer("RNN").states[0]
    assert np.abs(np.asarray(state)).max() > 0
    cb = ResetStatesEachEpoch()
    cb.set_model(m)
    cb.on_epoch_begin(0)
    assert np.abs(np.asarray(m.get_layer("RNN").states[0])).max() == 0


def _fixed(epochs):
    return trainer.Stopping(max_epochs=epochs, patience=epochs)


def test_batched_stateless_equals_alone():
    members = [(0.0, 0, 0.001), (0.2, 1, 0.003), (0.4, 2, 0.001)]
    wins = [make_windows(_train(n, s), 2) for n, s, _ in members]
    model = trainer.ModelBatch([init_weights(s, 1) for _, s, _ in members])
    X = torch.from_numpy(np.stack([x[:, :, 0] for x, _ in wins]))
    y = torch.from_numpy(np.stack([t for _, t in wins]))
    gens = [torch.Generator().manual_seed(s) for _, s, _ in members]

    def epoch(batch, lr, rows):
        order = torch.stack([torch.randperm(X.shape[1], generator=g) for g in gens])
        r = rows[:, None]
        return trainer.batch_stateless_epoch(batch, X[r, order], y[r, order], 128, lr)

    trainer.fit(model, [lr for *_, lr in members], epoch, None, _fixed(40))
    for (noise, seed, lr), got, (Xa, ya) in zip(members, model.keras_weights(), wins, strict=True):
        alone = keras_to_torch(init_weights(seed, 1))
        opt = KerasRMSprop([p for p in alone.parameters() if p.requires_grad], lr=lr)
        gen = torch.Generator().manual_seed(seed)
        Xt, yt = torch.from_numpy(Xa), torch.from_numpy(ya)
        for _ in range(40):
            order = torch.randperm(len(Xt), generator=gen)
            stateless_epoch(alone, opt, Xt, yt, 128, order, grads="autograd")
        want = torch_to_keras(alone)
        moved = max(np.abs(a - b).max() for a, b in zip(want, init_weights(seed, 1), strict=True))
        assert moved > 1e-3
        for a, b in zip(got, want, strict=True):
            assert np.abs(a - b).max() <= 1e-5, (noise, seed)


@pytest.mark.parametrize(("targets", "seq_len"), [("last", 2), ("seq", 3), ("seq", 1)])
def test_batched_stateful_equals_alone(targets, seq_len):
    # Noisy series: on the clean wave the streams come in antisymmetric pairs, the exact
    # bias gradient is 0 and only rounding breaks the symmetry, which training then
    # amplifies; any two float32 programs part ways there (see the README).
    members = [(0.1, 0), (0.3, 5)]
    chunks = [make_stream_chunks(_train(n, s), seq_len, 10, targets) for n, s in members]
    model = trainer.ModelBatch([init_weights(s, 1) for _, s in members])
    X = torch.from_numpy(np.stack([x[..., 0] for x, _ in chunks]))
    y = torch.from_numpy(np.stack([t[..., 0] if targets == "seq" else t for _, t in chunks]))

    def epoch(batch, lr, rows):
        return trainer.batch_stateful_epoch(batch, X[rows], y[rows], targets == "seq", lr)

    trainer.fit(model, [0.001, 0.001], epoch, None, _fixed(15))
    for (_, seed), got, (Xa, ya) in zip(members, model.keras_weights(), chunks, strict=True):
        want, _ = _alone_stateful(init_weights(seed, 1), Xa, ya, 15, grads="autograd")
        for a, b in zip(got, want, strict=True):
            assert np.abs(a - b).max() <= 1e-5


def test_train_py_stateful_mode(tmp_path):
    out = tmp_path / "run"
    r = run_cli(
        "--cycles",
        "60",
        "--epochs",
        "5",
        "--train-mode",
        "stateful",
        "--streams",
        "9",
        "--targets",
        "seq",
        "--seq-len",
        "3",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert len(load_keras_weights(out / "keras_weights.npz")) == 5
    r = run_cli(
        "--cycles",
        "60",
        "--train-mode",
        "stateful",
        "--streams",
        "400",
        "--out",
        str(tmp_path / "x"),
    )
    assert r.returncode == 2
    assert "--streams 400" in r.stderr
