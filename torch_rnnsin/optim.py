"""Keras's RMSprop as a torch optimizer.

Keras:  v = rho*v + (1-rho)*g^2 ;  w -= lr * g / sqrt(v + eps)
torch.optim.RMSprop puts eps outside the square root (g / (sqrt(v) + eps)),
which is a different optimizer; this one follows Keras, in Keras's order of
float32 operations.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class KerasRMSprop(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 0.001,
        rho: float = 0.9,
        eps: float = 1e-7,
    ) -> None:
        if not (lr > 0 and lr < float("inf")):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (0.0 <= rho < 1.0):
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not (eps >= 0):
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, eps = group["lr"], group["rho"], group["eps"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            vs = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                vs.append(state["velocity"])
            # v = rho*v + (1-rho)*g^2
            torch._foreach_mul_(vs, rho)
            torch._foreach_add_(vs, torch._foreach_mul(torch._foreach_mul(grads, grads), 1 - rho))
            # w -= (lr*g) / sqrt(v + eps)
            denom = torch._foreach_sqrt(torch._foreach_add(vs, eps))
            torch._foreach_sub_(params, torch._foreach_div(torch._foreach_mul(grads, lr), denom))
        return loss
