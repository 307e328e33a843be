"""The torch side of a ported Keras model: one module per Keras layer.

Every block has ``forward(x, state) -> (y, new_state)`` (state: a list of (B, H) tensors,
empty for layers without one), ``state_sizes`` and ``streamable``. Recurrent layers hold a
real ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (batch_first) as ``.rnn``, or ``GRUResetBefore``
where Keras's GRU(reset_after=False) computes what ``nn.GRU`` cannot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda x: F.softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,  # exact (erf), Keras's default approximate=False
    "exponential": torch.exp,
}


class GRUResetBefore(nn.Module):
    """Keras GRU with ``reset_after=False``, laid out like ``nn.GRU`` (rows r, z, n):

    r  = sigmoid(x W_r + b_r + h U_r)
    z  = sigmoid(x W_z + b_z + h U_z)
    n  = tanh(x W_n + b_n + (r * h) U_n)     <- reset gate *before* the matmul
    h' = z * h + (1 - z) * n
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.batch_first, self.num_layers, self.bidirectional = True, 1, False
        H = hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(3 * H, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(3 * H, H))
        self.bias_ih_l0 = nn.Parameter(torch.zeros(3 * H)) if bias else None
        k = H**-0.5
        nn.init.uniform_(self.weight_ih_l0, -k, k)
        nn.init.uniform_(self.weight_hh_l0, -k, k)

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F), h0 (1, B, H) -> outputs (B, T, H), h_n (1, B, H), as nn.GRU."""
        B, T, _ = x.shape
        gi = F.linear(x, self.weight_ih_l0, self.bias_ih_l0)  # (B, T, 3H)
        U_rz, U_n = self.weight_hh_l0.split([2 * self.hidden_size, self.hidden_size])
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0[0]  # (B, H)
        outs = []
        for t in range(T):
            i_rz, i_n = gi[:, t].split([2 * self.hidden_size, self.hidden_size], dim=-1)
            r, z = torch.sigmoid(i_rz + h @ U_rz.T).chunk(2, dim=-1)  # (B, H) each
            n = torch.tanh(i_n + (r * h) @ U_n.T)
            h = z * h + (1 - z) * n
            outs.append(h)
        return torch.stack(outs, dim=1), h.unsqueeze(0)


class Recurrent(nn.Module):
    """SimpleRNN / LSTM / GRU: the torch RNN plus Keras's go_backwards / return_sequences."""

    def __init__(self, kind: str, name: str, options: dict, input_size: int) -> None:
        super().__init__()
        self.keras_class, self.keras_name, self.options = kind, name, dict(options)
        H, bias = options["units"], options["use_bias"]
        if kind == "SimpleRNN":
            nl = options["activation"]
            self.rnn = nn.RNN(input_size, H, nonlinearity=nl, bias=bias, batch_first=True)
        elif kind == "LSTM":
            self.rnn = nn.LSTM(input_size, H, bias=bias, batch_first=True)
        elif options["reset_after"]:
            self.rnn = nn.GRU(input_size, H, bias=bias, batch_first=True)
        else:
            self.rnn = GRUResetBefore(input_size, H, bias=bias)
        if bias and kind in ("SimpleRNN", "LSTM"):  # Keras has one bias: bias_hh stays 0
            with torch.no_grad():
                self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_hh_l0.requires_grad_(False)
        self.return_sequences = options["return_sequences"]
        self.go_backwards = options["go_backwards"]
        self.state_sizes = [H, H] if kind == "LSTM" else [H]
        self.streamable = not self.go_backwards
        self.out_features = H

    def forward(
        self, x: torch.Tensor, state: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.go_backwards:
            x = x.flip(1)  # Keras reads reversed; a sequence output stays reversed
        hx = None
        if state is not None:
            hx = tuple(s.unsqueeze(0) for s in state)  # (1, B, H) each
            hx = hx if self.keras_class == "LSTM" else hx[0]
        out, hn = self.rnn(x, hx)  # (B, T, H)
        new = [s.squeeze(0) for s in hn] if self.keras_class == "LSTM" else [hn.squeeze(0)]
        return (out if self.return_sequences else out[:, -1]), new


class Bidirectional(nn.Module):
    """Keras Bidirectional: a forward and a backward ``Recurrent``, outputs merged."""

    def __init__(self, name: str, merge_mode: str | None, fwd: Recurrent, bwd: Recurrent):
        super().__init__()
        self.keras_class, self.keras_name, self.merge_mode = "Bidirectional", name, merge_mode
        self.forward_layer, self.backward_layer = fwd, bwd
        self.return_sequences = fwd.return_sequences
        self.state_sizes: list[int] = []
        self.streamable = False
        H = fwd.out_features
        self.out_features = 2 * H if merge_mode == "concat" else H

    def forward(self, x: torch.Tensor, state=None):
        y, _ = self.forward_layer(x)
        y_rev, _ = self.backward_layer(x)
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # Keras re-aligns the backward outputs in time
        m = self.merge_mode
        if m == "concat":
            out = torch.cat([y, y_rev], dim=-1)
        elif m == "sum":
            out = y + y_rev
        elif m == "mul":
            out = y * y_rev
        elif m == "ave":
            out = (y + y_rev) / 2
        else:  # None: two outputs
            out = [y, y_rev]
        return out, []


class Dense(nn.Module):
    """Dense (or TimeDistributed(Dense)): ``nn.Linear`` on the last axis, then the activation."""

    def __init__(self, name: str, options: dict, in_features: int, time_distributed: bool):
        super().__init__()
        self.keras_class = "TimeDistributed" if time_distributed else "Dense"
        self.keras_name, self.options = name, dict(options)
        self.linear = nn.Linear(in_features, options["units"], bias=options["use_bias"])
        self.activation = options["activation"]
        self.state_sizes: list[int] = []
        self.streamable = True
        self.out_features = options["units"]

    def forward(self, x: torch.Tensor, state=None):
        return ACTIVATIONS[self.activation](self.linear(x)), []


class Passthrough(nn.Module):
    """Dropout-like layers (identity at inference) and Activation layers."""

    def __init__(self, cls: str, name: str, config: dict, activation: str, in_features: int):
        super().__init__()
        self.keras_class, self.keras_name, self.config = cls, name, dict(config)
        self.activation = activation
        self.state_sizes: list[int] = []
        self.streamable = True
        self.out_features = in_features

    def forward(self, x: torch.Tensor, state=None):
        return ACTIVATIONS[self.activation](x), []
