"""The hand-derived SimpleRNN gradients equal autograd's, step by step (≤ 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_keras_weights

from torch_rnnsin.lesson.bptt import loss_and_grads
from torch_rnnsin.lesson.convert import keras_to_torch, torch_to_keras
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.training import train_step

CASES = [(1, 1, False), (1, 2, False), (1, 5, True), (3, 4, False), (4, 3, True), (2, 1, True)]


def _autograd_reference(weights, x, y, h0, every_step):
    """Each model alone through torch's nn.RNN + Linear and autograd."""
    k, r, b, dk, db = (w.numpy() for w in weights)
    model = keras_to_torch([k, r, b.reshape(-1), dk, db.reshape(-1)])
    ps = [p for p in model.parameters() if p.requires_grad]
    xs = x.unsqueeze(-1)  # (B, L, 1)
    if every_step:
        pred, _, _ = model.forward_sequence(xs, h0)
        loss = torch.nn.functional.mse_loss(pred[..., 0], y)
    else:
        pred, _ = model(xs, h0)
        loss = torch.nn.functional.mse_loss(pred, y)
    g = torch.autograd.grad(loss, ps)
    # torch layout -> Keras order: weight_ih (H,1), weight_hh (H,H), bias (H), dense (1,H), (1)
    return loss.item(), [g[0].t(), g[1].t(), g[2], g[3].t(), g[4]]


@pytest.mark.parametrize(("hidden", "seq_len", "every_step"), CASES)
def test_batched_gradients_equal_autograd(hidden, seq_len, every_step):
    M, B = 3, 17
    rng = np.random.default_rng(seq_len + 10 * hidden)
    per = [random_keras_weights(hidden, seed=s, scale=0.7) for s in range(M)]
    shapes = [(1, hidden), (hidden, hidden), (1, hidden), (hidden, 1), (1, 1)]
    weights = [torch.tensor(np.stack([w[i].reshape(s) for w in per])) for i, s in enumerate(shapes)]
    x = torch.tensor(rng.normal(size=(M, B, seq_len)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=(M, B, seq_len if every_step else 1)), dtype=torch.float32)
    h0 = torch.tensor(rng.uniform(-0.9, 0.9, size=(M, B, hidden)), dtype=torch.float32)
    loss, grads, h = loss_and_grads(weights, x, y, h0, every_step)
    assert h.shape == (M, B, hidden)
    for m in range(M):
        want_loss, want = _autograd_reference(
            [w[m] for w in weights], x[m], y[m], h0[m], every_step
        )
        assert loss[m].item() == pytest.approx(want_loss, rel=1e-6)
        for g, w in zip(grads, want, strict=True):
            assert np.abs(g[m].reshape(w.shape).numpy() - w.numpy()).max() <= 1e-6
        assert any(np.abs(w.numpy()).max() > 1e-3 for w in want)  # a real gradient


@pytest.mark.parametrize("every_step", [False, True])
def test_training_steps_hand_equal_autograd_step_by_step(every_step):
    """60 optimizer steps with carried state: after every step the weights agree ≤ 1e-6."""
    init = random_keras_weights(2, seed=5, scale=0.6)
    models = {g: keras_to_torch(init) for g in ("hand", "autograd")}
    opts = {
        g: KerasRMSprop([p for p in m.parameters() if p.requires_grad], lr=0.01)
        for g, m in models.items()
    }
    gen = torch.Generator().manual_seed(0)
    h = dict.fromkeys(models)
    moved = 0.0
    for _ in range(60):
        x = torch.randn(8, 3, 1, generator=gen)
        y = torch.randn(8, 3, 1, generator=gen) if every_step else torch.randn(8, 1, generator=gen)
        losses = {}
        for g, m in models.items():
            losses[g], h[g] = train_step(m, opts[g], x, y, h[g], every_step, grads=g)
        assert losses["hand"].item() == pytest.approx(losses["autograd"].item(), rel=1e-6)
        a, b = (torch_to_keras(models[g]) for g in ("hand", "autograd"))
        assert max(np.abs(u - v).max() for u, v in zip(a, b, strict=True)) <= 1e-6
        moved = max(moved, max(np.abs(u - v).max() for u, v in zip(a, init, strict=True)))
    assert moved > 0.05


def test_unknown_gradient_path_is_refused():
    m = keras_to_torch(random_keras_weights(1, seed=0))
    opt = KerasRMSprop([p for p in m.parameters() if p.requires_grad])
    with pytest.raises(ValueError, match="grads 'numpy'"):
        train_step(m, opt, torch.zeros(2, 2, 1), torch.zeros(2, 1), grads="numpy")
