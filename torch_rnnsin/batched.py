"""Many models of one shape trained at once, as one tensor program.

M models that share ``seq_len``, hidden size and training mode (different
seeds, noise levels, data) are M slices of stacked parameters; every op is
batched over the model axis and each model's loss only reaches its own slice,
so a model trained here ends on the weights it reaches alone (the study's test
checks ≤ 1e-5). This is what lets the study train 100+ models in minutes:
the per-step overhead, not arithmetic, is the cost of a 5-weight model.

Shapes: M models, B batch, L steps, H hidden.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .convert import check_keras_weights
from .optim import KerasRMSprop


class StackedRNN:
    """Keras-order weights of M models: kernel (M,1,H), recurrent (M,H,H),
    bias (M,1,H), dense kernel (M,H,1), dense bias (M,1,1)."""

    def __init__(self, weights: Sequence[Sequence[np.ndarray]], device: str = "cpu") -> None:
        ws = [check_keras_weights(w) for w in weights]
        self.params = [
            torch.tensor(
                np.stack([w[i].reshape(shape) for w in ws]), device=device, requires_grad=True
            )
            for i, shape in enumerate(self._shapes(ws[0][0].shape[1]))
        ]

    @staticmethod
    def _shapes(H: int) -> list[tuple[int, ...]]:
        return [(1, H), (H, H), (1, H), (H, 1), (1, 1)]

    def keras_weights(self) -> list[list[np.ndarray]]:
        """Back to the five Keras-order arrays of each model."""
        kernel, recurrent, bias, dk, db = (p.detach().cpu().numpy() for p in self.params)
        return [
            [kernel[m], recurrent[m], bias[m, 0], dk[m], db[m, 0]] for m in range(kernel.shape[0])
        ]

    def run(self, x: torch.Tensor, h: torch.Tensor | None = None, every_step: bool = False):
        """x (M, B, L) -> predictions (M, B, 1) from the last state, or (M, B, L) at
        every step; and the last state (M, B, H)."""
        kernel, recurrent, bias, dk, db = self.params
        M, B, L = x.shape
        if h is None:
            h = x.new_zeros(M, B, kernel.shape[-1])
        outs = []
        for t in range(L):
            h = torch.tanh(
                x[:, :, t : t + 1] * kernel + torch.bmm(h, recurrent) + bias
            )  # (M, B, H)
            if every_step:
                outs.append(torch.bmm(h, dk) + db)  # (M, B, 1)
        if every_step:
            return torch.cat(outs, dim=2), h  # (M, B, L)
        return torch.bmm(h, dk) + db, h  # (M, B, 1)


def _model_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over models of each model's own mean squared error: model m's gradient
    is exactly the gradient of its own loss."""
    M = pred.shape[0]
    per_model = ((pred - target) ** 2).reshape(M, -1).mean(dim=1)  # (M,)
    return per_model.sum(), per_model.detach()


def train_stateless_batched(
    model: StackedRNN,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    shuffle_seeds: Sequence[int] | None,
) -> np.ndarray:
    """X (M, N, L), y (M, N, 1). Each model shuffles with its own
    ``torch.Generator(seed)``, as the Lightning module does. Returns the last
    epoch's per-model training loss (M,)."""
    M, N, _ = X.shape
    opt = KerasRMSprop(model.params, lr=lr)  # elementwise, so per model
    gens = (
        None if shuffle_seeds is None else [torch.Generator().manual_seed(s) for s in shuffle_seeds]
    )
    rows = torch.arange(M, device=X.device)[:, None]
    for _ in range(epochs):
        if gens is not None:
            order = torch.stack([torch.randperm(N, generator=g) for g in gens]).to(
                X.device
            )  # (M, N)
            Xe, ye = X[rows, order], y[rows, order]
        else:
            Xe, ye = X, y
        total = torch.zeros(M, device=X.device)
        for start in range(0, N, batch_size):
            xb, yb = Xe[:, start : start + batch_size], ye[:, start : start + batch_size]
            pred, _ = model.run(xb)
            loss, per_model = _model_loss(pred, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += per_model * xb.shape[1]
    return (total / N).cpu().numpy()


def train_stateful_batched(
    model: StackedRNN, X: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, every_step: bool
) -> np.ndarray:
    """X (M, K, B, L); y (M, K, B, 1) one target a chunk or (M, K, B, L) one a step.
    State carried between chunks, detached, reset each epoch. Returns the last
    epoch's per-model mean loss (M,)."""
    M, K, B, L = X.shape
    opt = KerasRMSprop(model.params, lr=lr)  # elementwise, so per model
    for _ in range(epochs):
        h = None
        total = torch.zeros(M, device=X.device)
        for k in range(K):
            pred, h = model.run(X[:, k], h, every_step=every_step)
            loss, per_model = _model_loss(pred, y[:, k])
            opt.zero_grad()
            loss.backward()
            opt.step()
            h = h.detach()
            total += per_model
    return (total / K).cpu().numpy()
