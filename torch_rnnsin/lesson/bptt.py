"""The SimpleRNN + Dense training step with hand-derived gradients, in torch.

At 5 weights a training step is per-op overhead, not arithmetic, and autograd's
bookkeeping (a graph node per op, then a backward pass through it) costs more
than the maths. This is the same forward pass and its gradient written out
(as ``numpy_ref.train_numpy`` does in NumPy), batched over a leading axis of M
independent models, with no autograd at all. The tests check it against
autograd step by step and, through ``training``, against Keras's ``fit``.

    a_t = x_t * kernel + h_{t-1} @ recurrent + bias        h_t = tanh(a_t)
    pred = h @ dense_kernel + dense_bias                   (last step, or every step)
    loss = mean over the batch (and steps) of (pred - y)^2, per model

Backward, truncated at the chunk's start (no gradient into ``h0``):

    dpred = 2 (pred - y) / n
    dh_t  = dpred_t dense_kernel^T + da_{t+1} recurrent^T,   da_t = dh_t (1 - h_t^2)
    kernel' = sum x_t da_t,  recurrent' = sum h_{t-1}^T da_t,  bias' = sum da_t

Shapes: M models, B batch, L steps, H hidden. Weights in Keras order with the
model axis first: kernel (M,1,H), recurrent (M,H,H), bias (M,1,H),
dense kernel (M,H,1), dense bias (M,1,1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def forward(
    weights: Sequence[torch.Tensor],
    x: torch.Tensor,
    h0: torch.Tensor | None = None,
    every_step: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions only: x (M, B, L) -> (M, B, 1) from the last state, or (M, B, L) at
    every step; and the last state (M, B, H)."""
    kernel, recurrent, bias, dk, db = weights
    M, B, L = x.shape
    h = x.new_zeros(M, B, kernel.shape[-1]) if h0 is None else h0
    xk = torch.addcmul(
        bias.unsqueeze(1), x.transpose(1, 2).unsqueeze(-1), kernel.unsqueeze(1)
    )  # (M, L, B, H)
    outs = []
    for t in range(L):
        h = torch.tanh(xk[:, t] + torch.bmm(h, recurrent))  # (M, B, H)
        if every_step:
            outs.append(h)
    out = torch.stack(outs, dim=2) if every_step else h.unsqueeze(2)  # (M, B, T, H)
    T = out.shape[2]
    pred = torch.bmm(out.reshape(M, B * T, out.shape[-1]), dk) + db  # (M, B*T, 1)
    return pred.reshape(M, B, T), h


@torch.no_grad()
def loss_and_grads(
    weights: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    h0: torch.Tensor | None = None,
    every_step: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """x (M, B, L); y (M, B, 1) for a target after the chunk, (M, B, L) for one a step.

    Returns each model's MSE (M,), the five gradients (shapes of ``weights``)
    and the last state (M, B, H)."""
    kernel, recurrent, bias, dk, db = weights
    M, B, L = x.shape
    H = kernel.shape[-1]
    h = x.new_zeros(M, B, H) if h0 is None else h0
    xt = x.transpose(1, 2)  # (M, L, B): time-major, so that each step's slice is one block
    xk = torch.addcmul(bias.unsqueeze(1), xt.unsqueeze(-1), kernel.unsqueeze(1))  # (M, L, B, H)
    hs = [h]
    for t in range(L):
        h = torch.tanh(xk[:, t] + torch.bmm(h, recurrent))  # (M, B, H)
        hs.append(h)
    every = torch.stack(hs, dim=1)  # (M, L+1, B, H): h_{-1} .. h_{L-1}
    states, prev = every[:, 1:].reshape(M, L * B, H), every[:, :-1].reshape(M, L * B, H)
    if every_step:
        out, target, T = states, y.transpose(1, 2).reshape(M, L * B, 1), L  # time-major
    else:
        out, target, T = h, y, 1  # (M, B, H), (M, B, 1)
    pred = torch.bmm(out, dk) + db  # (M, T*B, 1)
    err = pred - target
    loss = err.square().mean(dim=(1, 2))  # (M,)
    dpred = err * (2.0 / (B * T))  # (M, T*B, 1)
    g_db = dpred.sum(dim=1, keepdim=True)  # (M, 1, 1)
    g_dk = torch.bmm(out.transpose(1, 2), dpred)  # (M, H, 1)
    dh_out = (dpred * dk.transpose(1, 2)).view(M, T, B, H)  # dpred_t dense_kernel^T
    dtanh = (1.0 - states.square()).view(M, L, B, H)
    rec_t = recurrent.transpose(1, 2)
    das = []
    dh = dh_out[:, -1]
    for t in range(L - 1, -1, -1):
        da = dh * dtanh[:, t]  # (M, B, H)
        das.append(da)
        if t > 0:
            dh = torch.bmm(da, rec_t)
            if every_step:
                dh = dh + dh_out[:, t - 1]
    da = torch.stack(das[::-1], dim=1).reshape(M, L * B, H)  # (M, L*B, H)
    g_k = torch.bmm(xt.reshape(M, 1, L * B), da)  # (M, 1, H)
    g_r = torch.bmm(prev.transpose(1, 2), da)  # (M, H, H)
    g_b = da.sum(dim=1, keepdim=True)  # (M, 1, H)
    return loss, [g_k, g_r, g_b, g_dk, g_db], h
