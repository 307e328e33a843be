"""Many independent models of one shape trained at once, as one tensor program.

M models that share ``seq_len``, hidden size and training mode (different
seeds, noise levels, data, learning rates) are M rows of one weight buffer;
every op is batched over the model axis and each model's loss reaches only its
own row, so a model trained here ends on the weights it reaches alone (the
tests check ≤ 1e-5). Gradients are the hand-derived ones of ``bptt``: at 5
weights a step is per-op overhead, and one batched step serves all M models.

Early stopping, per model: after each epoch every model's validation loss is
measured; a model whose best loss has not fallen by a relative
``min_improvement`` for ``patience`` epochs stops (frozen: it leaves the batch, whose
cost shrinks, while the others go on), and every model ends on the weights of
its lowest validation loss.

Shapes: M models, N windows, K chunks, B batch (streams), L steps, H hidden, P weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...common.errors import Refused
from ..bptt import forward, loss_and_grads
from ..convert import check_keras_weights
from ..optim import rmsprop_


class ModelBatch:
    """The Keras-order weights of M independent models (not stacked layers), one row
    of a flat (M, P) buffer each; ``weights`` are views into it: kernel (M,1,H),
    recurrent (M,H,H), bias (M,1,H), dense kernel (M,H,1), dense bias (M,1,1)."""

    def __init__(self, weights: Sequence[Sequence[np.ndarray]], device: str = "cpu") -> None:
        ws = [check_keras_weights(w) for w in weights]
        H = ws[0][0].shape[1]
        if any(w[0].shape[1] != H for w in ws):
            raise Refused("a ModelBatch holds models of one hidden size")
        rows = [np.concatenate([a.reshape(-1) for a in w]) for w in ws]
        self.flat = torch.tensor(np.stack(rows), dtype=torch.float32, device=device)  # (M, P)
        self.velocity = torch.zeros_like(self.flat)  # RMSprop's, one per weight
        self.shapes = [(1, H), (H, H), (1, H), (H, 1), (1, 1)]
        self.weights = self._views()

    def subset(self, keep: torch.Tensor) -> ModelBatch:
        """A new batch of the models where ``keep`` (M,) is true, with their optimizer state."""
        sub = ModelBatch.__new__(ModelBatch)
        sub.flat, sub.velocity, sub.shapes = self.flat[keep], self.velocity[keep], self.shapes
        sub.weights = sub._views()
        return sub

    def _views(self) -> list[torch.Tensor]:
        M, views, offset = self.flat.shape[0], [], 0
        for shape in self.shapes:
            n = shape[0] * shape[1]
            views.append(self.flat[:, offset : offset + n].view(M, *shape))
            offset += n
        return views

    @property
    def size(self) -> int:
        return self.flat.shape[0]

    def keras_weights(self) -> list[list[np.ndarray]]:
        """Back to the five Keras-order arrays of each model."""
        k, r, b, dk, db = (w.cpu().numpy() for w in self.weights)
        return [[k[m], r[m], b[m, 0], dk[m], db[m, 0]] for m in range(self.size)]

    def step(self, x: torch.Tensor, y: torch.Tensor, h, every_step: bool, lr: torch.Tensor):
        """One RMSprop step of every model on its own batch; lr (M, 1), 0 for a frozen
        model. Returns each model's loss (M,) and the last state (M, B, H)."""
        loss, grads, h = loss_and_grads(self.weights, x, y, h, every_step)
        g = torch.cat([gr.reshape(self.size, -1) for gr in grads], dim=1)  # (M, P)
        rmsprop_(self.flat, g, self.velocity, lr)
        return loss, h


def batch_stateless_epoch(
    model: ModelBatch,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    lr: torch.Tensor,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """X (M, N, L), y (M, N, 1), order (M, N) each model's permutation or None.
    Returns each model's sample-weighted mean training loss (M,)."""
    M, N, _ = X.shape
    if order is not None:
        rows = torch.arange(M, device=X.device)[:, None]
        X, y = X[rows, order], y[rows, order]
    total = torch.zeros(M, device=X.device)
    for start in range(0, N, batch_size):
        xb, yb = X[:, start : start + batch_size], y[:, start : start + batch_size]
        loss, _ = model.step(xb, yb, None, False, lr)
        total += loss * xb.shape[1]
    return total / N


def batch_stateful_epoch(
    model: ModelBatch, X: torch.Tensor, y: torch.Tensor, every_step: bool, lr: torch.Tensor
) -> torch.Tensor:
    """X (M, K, B, L); y (M, K, B, 1), or (M, K, B, L) with ``every_step``. The state
    starts at 0 and is carried, detached, from chunk to chunk. Returns the mean loss (M,)."""
    h, total = None, torch.zeros(X.shape[0], device=X.device)
    for k in range(X.shape[1]):
        loss, h = model.step(X[:, k], y[:, k], h, every_step, lr)
        total += loss
    return total / X.shape[1]


def windows_loss(model: ModelBatch, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Stateless loss of windows X (M, N, L) against y (M, N, 1): (M,)."""
    pred, _ = forward(model.weights, X)
    return (pred - y).square().mean(dim=(1, 2))


def chunks_loss(
    model: ModelBatch, X: torch.Tensor, y: torch.Tensor, every_step: bool
) -> torch.Tensor:
    """The stateful training loss on chunks (M, K, B, L), without updates: (M,)."""
    h, total = None, torch.zeros(X.shape[0], device=X.device)
    for k in range(X.shape[1]):
        pred, h = forward(model.weights, X[:, k], h, every_step)
        total += (pred - y[:, k]).square().mean(dim=(1, 2))
    return total / X.shape[1]


@dataclass(frozen=True)
class Stopping:
    max_epochs: int
    patience: int
    min_improvement: float = 1e-3


@dataclass
class Outcome:
    """Per model (arrays of M): the best validation loss, the training loss of that
    epoch, its epoch, the epochs run, and whether the model stopped by patience."""

    val_loss: np.ndarray
    train_loss: np.ndarray
    best_epoch: np.ndarray
    epochs_trained: np.ndarray
    converged: np.ndarray


def fit(
    model: ModelBatch,
    lr: Sequence[float],
    epoch: Callable[[ModelBatch, torch.Tensor, torch.Tensor], torch.Tensor],
    val_loss: Callable[[ModelBatch, torch.Tensor], torch.Tensor] | None,
    stop: Stopping,
) -> Outcome:
    """Train every model with ``epoch(batch, lr (m, 1), rows (m,)) -> train loss (m,)``, where
    ``batch`` holds the m models still training (``rows``: their indices in ``model``).
    With ``val_loss(batch, rows) -> (m,)``: early stopping (see the module's docstring),
    each model ending on its best weights; stopped models leave the batch, so their cost
    stops too. Without it: ``stop.max_epochs`` epochs and the last weights."""
    M = model.size
    lr0 = torch.tensor(lr, dtype=torch.float32)  # (M,)
    active = torch.ones(M, dtype=torch.bool)
    best = torch.full((M,), float("inf"))
    counted = torch.full((M,), float("inf"))  # the last best that counted as improvement
    best_train, best_epoch = torch.full((M,), float("nan")), torch.zeros(M, dtype=torch.long)
    wait = torch.zeros(M, dtype=torch.long)
    stopped_at = torch.full((M,), stop.max_epochs, dtype=torch.long)
    converged = torch.zeros(M, dtype=torch.bool)
    best_w = model.flat.clone()
    rows = torch.arange(M)
    batch = model
    for e in range(1, stop.max_epochs + 1):
        train = torch.full((M,), float("nan"))
        train[rows] = epoch(batch, lr0[rows, None].to(model.flat.device), rows).cpu()
        if val_loss is None:
            best_train, best_epoch[:] = train, e
            continue
        val = torch.full((M,), float("nan"))
        val[rows] = val_loss(batch, rows).cpu()
        finite = torch.isfinite(val)
        finite[rows] &= torch.isfinite(batch.flat).all(dim=1).cpu()
        better = active & finite & (val < best)
        if better.any():
            best = torch.where(better, val, best)
            best_train = torch.where(better, train, best_train)
            best_epoch[better] = e
            best_w[better] = batch.flat[better[rows]].cpu().to(best_w.device)
        gain = better & (val < counted * (1 - stop.min_improvement))
        counted = torch.where(gain, val, counted)
        wait = torch.where(gain, 0, wait + 1)
        ends = active & ((wait >= stop.patience) | ~finite)
        if ends.any():
            converged |= ends & finite
            stopped_at[ends] = e
            active &= ~ends
            if not active.any():
                break
            keep = active[rows]
            batch = batch.subset(keep)
            rows = rows[keep]
    if val_loss is None:  # no model left the batch: it is ``model``, on its last weights
        best = torch.full((M,), float("nan"))
    else:
        model.flat.copy_(best_w)
    return Outcome(
        val_loss=best.numpy(),
        train_loss=best_train.numpy(),
        best_epoch=best_epoch.numpy(),
        epochs_trained=stopped_at.numpy(),
        converged=converged.numpy(),
    )
