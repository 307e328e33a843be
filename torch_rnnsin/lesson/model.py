"""The 5-weight recurrent model: ``nn.RNN`` + ``nn.Linear`` with Keras's semantics.

    h_t      = tanh(x_t * w_x + h_{t-1} * w_h + b_1)
    x*_{t+1} = h_t * w_2 + b_2

Keras's SimpleRNN has one bias where ``nn.RNN`` has two (``bias_ih``,
``bias_hh``); ``bias_hh`` is kept at zero and frozen so that the trainable
parameters are exactly Keras's: ``H + H*H + H + H + 1`` (5 at H = 1).

It also speaks the ported model's streaming interface (``streamable``, ``state_sizes``,
``forward(x, state=[h], return_state=True) -> (y, [h])``), which is what
``torch_rnnsin.export_onnx`` calls, so the exporter needs no lesson code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..common.errors import Refused


class SinRNN(nn.Module):
    streamable = True  # one state, carried from call to call

    def __init__(self, hidden_size: int = 1, input_size: int = 1) -> None:
        super().__init__()
        if int(hidden_size) != hidden_size or hidden_size < 1:
            raise Refused(f"hidden_size must be an integer >= 1, got {hidden_size!r}")
        self.hidden_size = int(hidden_size)
        self.input_size = int(input_size)
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.dense = nn.Linear(hidden_size, 1)
        self.rnn.bias_hh_l0.requires_grad_(False)  # Keras has one bias: this one stays 0
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Keras defaults: glorot_uniform kernels, orthogonal recurrent kernel, zero biases."""
        H, F = self.hidden_size, self.input_size
        # glorot_uniform on the Keras kernel (F, H); its transpose is weight_ih (H, F).
        limit = math.sqrt(6.0 / (F + H))
        self.rnn.weight_ih_l0.uniform_(-limit, limit)
        nn.init.orthogonal_(self.rnn.weight_hh_l0)
        self.rnn.bias_ih_l0.zero_()
        self.rnn.bias_hh_l0.zero_()
        limit = math.sqrt(6.0 / (H + 1))
        self.dense.weight.uniform_(-limit, limit)
        self.dense.bias.zero_()

    @property
    def state_sizes(self) -> list[int]:
        """The size of each state tensor (the ported models' interface): [H]."""
        return [self.hidden_size]

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        *,
        state: list[torch.Tensor] | None = None,
        return_state: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | list[torch.Tensor]]:
        """x: (B, T, 1), h0: (B, H) or None for the zero state.

        Returns the prediction from the last state, (B, 1), and that state, (B, H).
        The ported models' form: ``state=[h0]`` in, ``return_state=True`` gives the
        state as the list ``[h]``.
        """
        if state is not None:
            h0 = state[0]
        _out, h = self.rnn(x, None if h0 is None else h0.unsqueeze(0))  # (B, T, H), (1, B, H)
        h = h.squeeze(0)  # (B, H)
        return self.dense(h), [h] if return_state else h

    def forward_sequence(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predictions at every step (Keras ``return_sequences=True`` + Dense).

        x: (B, T, 1) -> predictions (B, T, 1), states (B, T, H), last state (B, H).
        """
        out, h = self.rnn(x, None if h0 is None else h0.unsqueeze(0))  # (B, T, H), (1, B, H)
        return self.dense(out), out, h.squeeze(0)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
