"""One epoch of training, as plain functions: the Lightning module and the plain
loop of the benchmark both call these, so their numerics are the same code.

Stateless (Keras ``fit``): windows in ``order`` (a permutation, or the identity
for ``shuffle=False``), cut into batches of ``batch_size``, the last one
smaller. Stateful (Keras ``stateful=True``): batch k is chunk k of every
stream; the state is carried between batches and detached (truncated BPTT).

Gradients: ``grads="hand"`` (the default) computes them with the hand-derived
backward pass of ``bptt`` (no autograd graph: a step costs a fraction of
autograd's per-op overhead); ``grads="autograd"`` lets torch derive them. The
tests check the two against each other and the hand path against Keras's fit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..common.errors import Refused
from .bptt import loss_and_grads
from .model import SinRNN

GRADS = ("hand", "autograd")


def keras_views(model: SinRNN) -> list[torch.Tensor]:
    """The model's weights as one-model Keras-order tensors (views, no copy):
    kernel (1,1,H), recurrent (1,H,H), bias (1,1,H), dense kernel (1,H,1), dense bias (1,1,1)."""
    rnn, H = model.rnn, model.hidden_size
    return [
        rnn.weight_ih_l0.t().unsqueeze(0),
        rnn.weight_hh_l0.t().unsqueeze(0),
        (rnn.bias_ih_l0 + rnn.bias_hh_l0).view(1, 1, H),  # bias_hh is frozen at 0
        model.dense.weight.t().unsqueeze(0),
        model.dense.bias.view(1, 1, 1),
    ]


@torch.no_grad()
def set_grads(model: SinRNN, grads: list[torch.Tensor]) -> None:
    """Write one model's Keras-order gradients into the torch parameters' ``.grad``
    (in place when a gradient tensor exists: the optimizer's flat buffer stays intact)."""
    rnn = model.rnn
    pairs = (
        (rnn.weight_ih_l0, grads[0][0].t()),
        (rnn.weight_hh_l0, grads[1][0].t()),
        (rnn.bias_ih_l0, grads[2].view(-1)),
        (model.dense.weight, grads[3][0].t()),
        (model.dense.bias, grads[4].view(-1)),
    )
    for p, g in pairs:
        if p.grad is None:
            p.grad = g.contiguous().clone()
        else:
            p.grad.copy_(g)


def train_step(
    model: SinRNN,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    h0: torch.Tensor | None = None,
    every_step: bool = False,
    grads: str = "hand",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on x (b, L, 1), y (b, 1) or (b, L, 1) with ``every_step``.

    Returns the batch's MSE (a 0-d tensor, detached) and the last state (b, H), detached."""
    if grads == "hand":
        target = y[..., 0] if every_step else y  # (b, L) or (b, 1)
        loss, gs, h = loss_and_grads(
            keras_views(model),
            x[..., 0].unsqueeze(0),
            target.unsqueeze(0),
            None if h0 is None else h0.unsqueeze(0),
            every_step,
        )
        set_grads(model, gs)
        optimizer.step()
        return loss[0], h[0]
    if grads != "autograd":
        raise Refused(f"grads {grads!r}: must be one of {', '.join(GRADS)}")
    optimizer.zero_grad(set_to_none=True)
    if every_step:
        pred, _, h = model.forward_sequence(x, h0)  # (b, L, 1), _, (b, H)
    else:
        pred, h = model(x, h0)  # (b, 1), (b, H)
    loss = F.mse_loss(pred, y)
    loss.backward()
    optimizer.step()
    return loss.detach(), h.detach()


def stateless_epoch(
    model: SinRNN,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    order: torch.Tensor | None = None,
    grads: str = "hand",
) -> float:
    """X (N, L, 1), y (N, 1). Returns the sample-weighted mean training loss (Keras's)."""
    N = X.shape[0]
    if order is not None:
        X, y = X[order], y[order]
    total = torch.zeros((), device=X.device)
    for start in range(0, N, batch_size):
        xb, yb = X[start : start + batch_size], y[start : start + batch_size]  # (b, L, 1), (b, 1)
        loss, _ = train_step(model, optimizer, xb, yb, grads=grads)
        total += loss * xb.shape[0]
    return (total / N).item()  # one device sync an epoch


def stateful_epoch(
    model: SinRNN,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    grads: str = "hand",
) -> float:
    """X (K, B, L, 1); y (K, B, 1) for one target a chunk, (K, B, L, 1) for one a step.

    The state starts at 0 (reset each epoch) and is carried, detached, from
    chunk k to chunk k+1. Returns the mean training loss over chunks."""
    K, B = X.shape[:2]
    h = torch.zeros(B, model.hidden_size, device=X.device, dtype=X.dtype)  # (B, H)
    every_step = y.dim() == 4
    total = torch.zeros((), device=X.device)
    for k in range(K):
        loss, h = train_step(model, optimizer, X[k], y[k], h, every_step, grads)
        total += loss
    return (total / K).item()


@torch.no_grad()
def mse(model: SinRNN, X: torch.Tensor, y: torch.Tensor) -> float:
    """Stateless loss of windows X (N, L, 1) against y (N, 1)."""
    return F.mse_loss(model(X)[0], y).item()
