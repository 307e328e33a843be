"""One epoch of training, as plain functions: the Lightning module and the plain
loop of the benchmark both call these, so their numerics are the same code.

Stateless (Keras ``fit``): windows in ``order`` (a permutation, or the identity
for ``shuffle=False``), cut into batches of ``batch_size``, the last one
smaller. Stateful (Keras ``stateful=True``): batch k is chunk k of every
stream; the state is carried between batches and detached (truncated BPTT).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .model import SinRNN


def _backward(loss: torch.Tensor) -> None:
    loss.backward()


def stateless_epoch(
    model: SinRNN,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    order: torch.Tensor | None = None,
    backward: Callable[[torch.Tensor], None] = _backward,
) -> float:
    """X (N, L, 1), y (N, 1). Returns the sample-weighted mean training loss (Keras's)."""
    N = X.shape[0]
    if order is not None:
        X, y = X[order], y[order]
    total = torch.zeros((), device=X.device)
    for start in range(0, N, batch_size):
        xb, yb = X[start : start + batch_size], y[start : start + batch_size]  # (b, L, 1), (b, 1)
        optimizer.zero_grad(set_to_none=True)
        pred, _ = model(xb)
        loss = F.mse_loss(pred, yb)
        backward(loss)
        optimizer.step()
        total += loss.detach() * xb.shape[0]
    return (total / N).item()  # one device sync an epoch


def stateful_epoch(
    model: SinRNN,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    backward: Callable[[torch.Tensor], None] = _backward,
) -> float:
    """X (K, B, L, 1); y (K, B, 1) for one target a chunk, (K, B, L, 1) for one a step.

    The state starts at 0 (reset each epoch) and is carried, detached, from
    chunk k to chunk k+1. Returns the mean training loss over chunks."""
    K, B = X.shape[:2]
    h = torch.zeros(B, model.hidden_size, device=X.device, dtype=X.dtype)  # (B, H)
    per_step = y.dim() == 4
    total = torch.zeros((), device=X.device)
    for k in range(K):
        optimizer.zero_grad(set_to_none=True)
        if per_step:
            pred, _, h = model.forward_sequence(X[k], h)  # (B, L, 1), _, (B, H)
        else:
            pred, h = model(X[k], h)  # (B, 1), (B, H)
        loss = F.mse_loss(pred, y[k])
        backward(loss)
        optimizer.step()
        h = h.detach()  # truncated BPTT: no gradient into the previous chunk
        total += loss.detach()
    return (total / K).item()


@torch.no_grad()
def mse(model: SinRNN, X: torch.Tensor, y: torch.Tensor) -> float:
    """Stateless loss of windows X (N, L, 1) against y (N, 1)."""
    return F.mse_loss(model(X)[0], y).item()
