"""SimpleRNN, LSTM, GRU (also as ``RNN(cell)``): real nn.RNN / nn.LSTM / nn.GRU where the
maths is theirs, ``OwnRNN`` where Keras computes something else (other activations, GRU with
``reset_after=False``).

    SimpleRNN  kernel (F, H)           -> weight_ih_l0 (H, F)    transposed
               recurrent_kernel (H, H) -> weight_hh_l0 (H, H)    transposed
               bias (H,)               -> bias_ih_l0 (H,)        bias_hh_l0 = 0, frozen
    LSTM       the same with 4H rows; gates i, f, c, o in both frameworks: transpose only
    GRU        columns z, r, h -> rows r, z, n; reset_after=True: bias (2, 3H), row 0 ->
               bias_ih_l0, row 1 -> bias_hh_l0. reset_after=False: one bias (3H,) -> bias_ih_l0

Masks (Keras's rule): at a masked step the state is unchanged and the output repeats the
previous one (zeros before the first step). Call arguments: ``initial_state`` from other
layers' tensors; ``return_state=True`` adds the final state to the outputs (LSTM: h, c).
"""

from __future__ import annotations

import torch
from torch import nn

from ...common.errors import Refused
from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, carried_outputs, check_entry, kind, time_input

TRACING = torch.jit.is_tracing  # export traces the fused module, never the one-step form
GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
CELLS = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}
RNN_OPTIONS = {
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "zero_output_for_mask",
}
CELL_OPTIONS = {
    "SimpleRNN": {"units", "activation", "use_bias"},
    "LSTM": {"units", "activation", "recurrent_activation", "use_bias"},
    "GRU": {"units", "activation", "recurrent_activation", "use_bias", "reset_after"},
}


class OwnRNN(nn.Module):
    """Keras's recurrence in plain torch ops, laid out like nn.RNN / nn.LSTM / nn.GRU (torch's
    gate rows: LSTM i, f, g, o; GRU r, z, n), for what the fused modules cannot compute:

        SimpleRNN  h' = act(x W + b + h U)
        LSTM       c' = rec(f) * c + rec(i) * act(g);  h' = rec(o) * act(c')
        GRU        n = act(x W_n + b_n + r * (h U_n + b'_n))   (reset_after=True)
                   n = act(x W_n + b_n + (r * h) U_n)          (reset_after=False)
                   h' = z * h + (1 - z) * n
    """

    def __init__(
        self, kind: str, input_size: int, hidden: int, bias: bool, act, rec, reset_after: bool
    ):
        super().__init__()
        k = GATES[kind]
        self.kind, self.act, self.rec, self.reset_after = kind, act, rec, reset_after
        self.input_size, self.hidden_size, self.bias = input_size, hidden, bias
        self.weight_ih_l0 = nn.Parameter(torch.empty(k * hidden, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(k * hidden, hidden))
        self.bias_ih_l0 = nn.Parameter(torch.zeros(k * hidden)) if bias else None
        two = bias and kind == "GRU" and reset_after
        self.bias_hh_l0 = nn.Parameter(torch.zeros(k * hidden)) if two else None

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
        """x (B, kH) already projected; h, c (B, H) -> h', c'."""
        H = self.hidden_size
        if self.kind == "SimpleRNN":
            return self.act(x + h @ self.weight_hh_l0.T), None
        if self.kind == "LSTM":
            i, f, g, o = (x + h @ self.weight_hh_l0.T).chunk(4, dim=-1)
            c = self.rec(f) * c + self.rec(i) * self.act(g)
            return self.rec(o) * self.act(c), c
        x_rz, x_n = x.split([2 * H, H], dim=-1)
        U_rz, U_n = self.weight_hh_l0.split([2 * H, H])
        if self.reset_after:
            hh = h @ self.weight_hh_l0.T
            if self.bias_hh_l0 is not None:
                hh = hh + self.bias_hh_l0
            h_rz, h_n = hh.split([2 * H, H], dim=-1)
            r, z = self.rec(x_rz + h_rz).chunk(2, dim=-1)
            n = self.act(x_n + r * h_n)
        else:
            r, z = self.rec(x_rz + h @ U_rz.T).chunk(2, dim=-1)
            n = self.act(x_n + (r * h) @ U_n.T)
        return z * h + (1 - z) * n, None

    def forward(self, x: torch.Tensor, hx=None):
        """x (B, T, F), hx as nn.RNN/LSTM/GRU's -> outputs (B, T, H), final state (1, B, H)."""
        B, T, _ = x.shape
        gi = torch.nn.functional.linear(x, self.weight_ih_l0, self.bias_ih_l0)  # (B, T, kH)
        if hx is None:
            h = x.new_zeros(B, self.hidden_size)
            c = x.new_zeros(B, self.hidden_size) if self.kind == "LSTM" else None
        elif self.kind == "LSTM":
            h, c = hx[0][0], hx[1][0]
        else:
            h, c = hx[0], None
        outs = []
        for t in range(T):
            h, c = self.step(gi[:, t], h, c)
            outs.append(h)
        hn = (h.unsqueeze(0), c.unsqueeze(0)) if self.kind == "LSTM" else h.unsqueeze(0)
        return torch.stack(outs, dim=1), hn


# Keras activation (file's Keras major) -> ONNX RNN-op activation (name, alpha, beta).
ONNX_ACTS = {
    "tanh": ("Tanh",),
    "sigmoid": ("Sigmoid",),
    "relu": ("Relu",),
    "linear": ("Affine", 1.0, 0.0),
    "elu": ("Elu", 1.0),
    "softsign": ("Softsign",),
    "softplus": ("Softplus",),
}


def onnx_activation(name: str, keras: int) -> tuple | None:
    """The ONNX RNN ops' form of a Keras activation; None when ONNX has none."""
    if name == "hard_sigmoid":  # clip(a x + b, 0, 1)
        return ("HardSigmoid", 0.2, 0.5) if keras == 2 else ("HardSigmoid", 1 / 6, 0.5)
    return ONNX_ACTS.get(name)


def cudnn_rows(kind: str) -> tuple[Row, ...]:
    """Keras 2's CuDNNLSTM / CuDNNGRU: torch's own layout, both biases in one flat array
    (input biases, then recurrent ones); GRU columns z, r, h."""
    gates = "zrh->rzn" if kind == "GRU" else ""
    return (
        Row("kernel", "weight_ih_l0", transpose=True, gates=gates),
        Row("recurrent_kernel", "weight_hh_l0", transpose=True, gates=gates),
        Row("bias", "bias_ih_l0", gates=gates, part=0, flat=True),
        Row("bias", "bias_hh_l0", gates=gates, part=1, flat=True),
    )


def rnn_rows(kind: str, use_bias: bool, reset_after: bool, own: bool) -> tuple[Row, ...]:
    gates = "zrh->rzn" if kind == "GRU" else ""
    rows = [
        Row("kernel", "weight_ih_l0", transpose=True, gates=gates),
        Row("recurrent_kernel", "weight_hh_l0", transpose=True, gates=gates),
    ]
    if not use_bias:
        return tuple(rows)
    if kind == "GRU" and reset_after:
        return (
            *rows,
            Row("bias", "bias_ih_l0", gates=gates, part=0),
            Row("bias", "bias_hh_l0", gates=gates, part=1),
        )
    if own or kind == "GRU":  # one bias in our own cell
        return (*rows, Row("bias", "bias_ih_l0", gates=gates))
    return (*rows, Row("bias", "bias_ih_l0"), Row("bias", "bias_hh_l0", zero=True))


def cell_options(layer: Layer, kind: str) -> dict:
    """The options that shape one cell's computation, checked."""
    o = {
        "units": layer.option("units", kind=int),
        "activation": activation(layer, default="tanh"),
        "use_bias": layer.option("use_bias", True, kind=bool),
    }
    if kind != "SimpleRNN":
        default = (
            "hard_sigmoid"
            if layer.keras == 2 and "recurrent_activation" not in layer.cfg
            else "sigmoid"
        )
        o["recurrent_activation"] = activation(layer, "recurrent_activation", default=default)
    if kind == "GRU":
        o["reset_after"] = layer.option("reset_after", layer.keras != 2, kind=bool)
    return o


def contiguous(mask: torch.Tensor) -> bool:
    """Each row's valid steps in one run at one end (pre- or post-padding; all or none)."""
    flips = (mask[:, 1:] != mask[:, :-1]).sum(1)  # (B,)
    return bool((flips <= 1).all())


class Cell(nn.Module):
    """One recurrence (the torch module ``.rnn``) and how Keras steps it."""

    def __init__(self, kind: str, o: dict, input_size: int, keras: int):
        super().__init__()
        self.kind, self.options, self.keras = kind, dict(o), keras
        H, bias = o["units"], o["use_bias"]
        act, rec = o["activation"], o.get("recurrent_activation", "sigmoid")
        fused = act == "tanh" and rec == "sigmoid" and o.get("reset_after", True)
        if kind == "SimpleRNN" and act in ("tanh", "relu"):
            self.rnn = nn.RNN(input_size, H, nonlinearity=act, bias=bias, batch_first=True)
        elif kind == "LSTM" and fused:
            self.rnn = nn.LSTM(input_size, H, bias=bias, batch_first=True)
        elif kind == "GRU" and fused:
            self.rnn = nn.GRU(input_size, H, bias=bias, batch_first=True)
        else:
            reset_after = o.get("reset_after", True)
            self.rnn = OwnRNN(
                kind, input_size, H, bias, function(act, keras), function(rec, keras), reset_after
            )
            acts = [rec, act, act] if kind == "LSTM" else [rec, act] if kind == "GRU" else [act]
            onnx = [onnx_activation(a, keras) for a in acts]
            self.rnn.onnx_activations = None if None in onnx else onnx  # export/onnx.py
        self.own = isinstance(self.rnn, OwnRNN)
        if bias and not self.own and kind in ("SimpleRNN", "LSTM"):  # Keras has one bias
            with torch.no_grad():
                self.rnn.bias_hh_l0.zero_()
            self.rnn.bias_hh_l0.requires_grad_(False)
        self.hidden = H
        self.state_sizes = (H, H) if kind == "LSTM" else (H,)

    def rows(self) -> tuple[Row, ...]:
        return rnn_rows(
            self.kind, self.options["use_bias"], self.options.get("reset_after", True), self.own
        )

    def run(self, x: torch.Tensor, state: list | None, mask: torch.Tensor | None):
        """x (B, T, F), state [(B, H), ...] -> outputs (B, T, H), final state [(B, H), ...]."""
        lstm = self.kind == "LSTM"
        if (
            mask is None
            and state is not None
            and x.shape[1] == 1
            and not self.own
            and not TRACING()
        ):
            return self.step(x[:, 0], state)  # streaming: the cell's own maths, no fused call
        if state is None:
            hx = None
        else:
            hx = tuple(s.unsqueeze(0) for s in state) if lstm else state[0].unsqueeze(0)
        if mask is None:
            out, hn = self.rnn(x, hx)  # (B, T, H)
            return out, ([s.squeeze(0) for s in hn] if lstm else [hn.squeeze(0)])
        B = x.shape[0]
        if hx is None:
            zero = x.new_zeros(1, B, self.hidden)
            hx = (zero, zero) if lstm else zero
        if not self.own and contiguous(mask):
            return self.run_padded(x, hx, mask)
        return self.run_steps(x, hx, mask)

    def step(self, x: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """One step with nn.LSTMCell / GRUCell / RNNCell's kernels (torch.lstm_cell, ...) and
        the fused module's weights: at T = 1 the fused call costs several times this, and
        these are the maths of its own loop (bit-identical with oneDNN off).
        x (B, F), state [(B, H), ...] -> outputs (B, 1, H), new state."""
        m = self.rnn
        w = m._flat_weights  # [w_ih, w_hh(, b_ih, b_hh)]: what the fused call itself reads
        if self.kind == "LSTM":
            h, c = torch.lstm_cell(x, state, *w)
            return h.unsqueeze(1), [h, c]
        if self.kind == "GRU":
            h = torch.gru_cell(x, state[0], *w)
        elif m.nonlinearity == "tanh":
            h = torch.rnn_tanh_cell(x, state[0], *w)
        else:
            h = torch.rnn_relu_cell(x, state[0], *w)
        return h.unsqueeze(1), [h]

    def run_padded(self, x: torch.Tensor, hx, mask: torch.Tensor):
        """A mask whose valid steps are contiguous and at one end of each row (pre- or
        post-padding, all or none valid): one fused call over the valid steps, packed.
        Rows with pads first are rolled so the valid steps come first; then, as Keras steps it,
        a pad keeps the state and repeats the last output (zeros before the first step)."""
        B, T, _ = x.shape
        lstm = self.kind == "LSTM"
        n = mask.sum(1)  # (B,) valid steps
        shift = torch.where(mask[:, 0], 0, T - n)  # (B,) pads first: rolled left by the pads
        t = torch.arange(T, device=x.device)
        idx = (t + shift[:, None]) % T  # (B, T)
        xr = x.gather(1, idx[:, :, None].expand(-1, -1, x.shape[2]))  # (B, T, F) valid first
        lengths = n.clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            xr, lengths, batch_first=True, enforce_sorted=False
        )
        out, hn = self.rnn(packed, hx)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        out = torch.cat([out.new_zeros(B, 1, self.hidden), out], dim=1)  # (B, 1 + T, H)
        j = ((t[None] - shift[:, None]).minimum(n[:, None] - 1) + 1).clamp(min=0)  # (B, T)
        y = out.gather(1, j[:, :, None].expand(-1, -1, self.hidden))  # (B, T, H)
        keep = (n > 0).view(1, B, 1)  # an all-masked row keeps its initial state
        if lstm:
            final = [torch.where(keep, a, b)[0] for a, b in zip(hn, hx, strict=True)]
        else:
            final = [torch.where(keep, hn, hx)[0]]
        return y, final

    def run_steps(self, x: torch.Tensor, hx, mask: torch.Tensor):
        """Any mask: one call a step (Keras's rule at each)."""
        B, T, _ = x.shape
        lstm = self.kind == "LSTM"
        prev = x.new_zeros(B, self.hidden)
        outs = []
        for t in range(T):  # Keras: a masked step keeps the state and repeats the output
            y, new = self.rnn(x[:, t : t + 1], hx)
            m = mask[:, t].view(1, B, 1)
            hx = (
                tuple(torch.where(m, a, b) for a, b in zip(new, hx, strict=True))
                if lstm
                else torch.where(m, new, hx)
            )
            prev = torch.where(m[0], y[:, 0], prev)
            outs.append(prev)
        final = [s.squeeze(0) for s in hx] if lstm else [hx.squeeze(0)]
        return torch.stack(outs, dim=1), final

    def describe(self, prefix: str) -> str:
        m = self.rnn
        if self.own:
            o = self.options
            acts = f"activation={o['activation']}, recurrent_activation={o.get('recurrent_activation', '-')}"
            return f"{prefix}rnn = OwnRNN({self.kind}, {m.input_size}, {m.hidden_size}, {acts}) [own cell: torch's fused module computes tanh/sigmoid only]"
        extra = f", nonlinearity={m.nonlinearity!r}" if self.kind == "SimpleRNN" else ""
        name = {"SimpleRNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU"}[self.kind]
        return f"{prefix}rnn = {name}({m.input_size}, {m.hidden_size}{extra}, bias={m.bias}, batch_first=True)"


class Recurrent(Block):
    """One Keras recurrent layer: one cell (or a stack of cells, StackedRNNCells)."""

    not_streamable = "go_backwards=True reads the sequence from its end"

    def __init__(
        self, layer: Layer, cells: list[Cell], flags: dict, cell_entries: list | None, x: Spec
    ):
        H = cells[-1].hidden
        self.return_sequences, self.return_state = flags["return_sequences"], flags["return_state"]
        self.go_backwards = flags["go_backwards"]
        self.zero_output_for_mask = flags["zero_output_for_mask"]
        y = Spec((x.shape[0], H) if self.return_sequences else (H,))
        states = [Spec((h,)) for c in cells for h in c.state_sizes]
        super().__init__(layer, [y, *states] if self.return_state else [y])
        self.cells = nn.ModuleList(cells)
        self.state_sizes = tuple(h for c in cells for h in c.state_sizes)
        self.streamable = not self.go_backwards
        self.cell_entries = cell_entries  # RNN(cell): the cell entries written back
        self.flags = flags

    @property
    def rnn(self) -> nn.Module:
        """The torch module of a one-cell layer (nn.RNN / nn.LSTM / nn.GRU, or OwnRNN)."""
        return self.cells[0].rnn

    @property
    def kind(self) -> str:
        return self.cells[0].kind

    def run(self, x: torch.Tensor, state: list | None, mask: torch.Tensor | None):
        """x (B, T, F) -> (Keras's output, final state list)."""
        # (export: a masked recurrence is a loop over steps); set past nn.Module's __setattr__
        object.__setattr__(self, "masked", mask is not None)
        if self.go_backwards:  # Keras reads reversed; a sequence output stays reversed
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        new, i = [], 0
        for c in self.cells:
            n = len(c.state_sizes)
            x, s = c.run(x, None if state is None else list(state[i : i + n]), mask)
            new += s
            i += n
        if mask is not None and self.zero_output_for_mask and self.return_sequences:
            x = x * mask.unsqueeze(-1).to(x.dtype)
        return (x if self.return_sequences else x[:, -1]), new

    def timed_outputs(self, timed: list[bool]) -> list[bool] | str:
        return carried_outputs(self, timed, self.return_sequences)

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        y, new = self.run(x, list(state) or None, None)
        return (y, *new) if self.return_state else y

    def apply(self, xs, masks, kwargs, state=None):
        init = kwargs.get("initial_state")
        if init is not None and len(init) != len(self.state_sizes):
            raise Refused(
                f"{self.keras_class} {self.keras_name!r}: {len(init)} initial states, expected {len(self.state_sizes)}"
            )
        mask = kwargs.get("mask", masks[0] if masks else None)
        y, new = self.run(xs[0], init if init is not None else state, mask)
        outs = [y, *new] if self.return_state else [y]
        return outs, (mask if self.return_sequences else None), new

    def parts(self) -> list[Part]:
        if len(self.cells) == 1:
            return [Part("cell", self.cells[0].rnn, self.cells[0].rows())]
        parts, used = [], {}
        for c in self.cells:  # Keras 3 names each cell's group by its class, counted
            snake = {"SimpleRNN": "simple_rnn_cell", "LSTM": "lstm_cell", "GRU": "gru_cell"}[c.kind]
            used[snake] = used.get(snake, -1) + 1
            name = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
            parts.append(Part(f"cell/cells/{name}", c.rnn, c.rows()))
        return parts

    def keras_entry(self) -> dict:
        flags = {k: v for k, v in self.flags.items() if k != "zero_output_for_mask" or v}
        if self.cell_entries is None:
            o = self.cells[0].options
            return {
                "module": "keras.layers",
                "class_name": self.keras_class,
                "config": {"name": self.keras_name, **o, **flags},
                "registered_name": None,
            }
        cells = [
            {
                "module": "keras.layers",
                "class_name": f"{c.kind}Cell",
                "config": {"name": n, **c.options},
                "registered_name": None,
            }
            for c, n in zip(self.cells, self.cell_entries, strict=True)
        ]
        cell = (
            cells[0]
            if len(cells) == 1
            else {
                "module": "keras.layers",
                "class_name": "StackedRNNCells",
                "config": {"cells": cells},
                "registered_name": None,
            }
        )
        return {
            "module": "keras.layers",
            "class_name": "RNN",
            "config": {"name": self.keras_name, "cell": cell, **flags},
            "registered_name": None,
        }

    def describe(self) -> list[str]:
        on = [k for k in ("return_sequences", "return_state", "go_backwards") if self.flags[k]]
        lines = []
        for i, c in enumerate(self.cells):
            lines.append(
                f"  -> {c.describe(f'cells.{i}.')}"
                + (f"  ({', '.join(on)})" if on and i == 0 else "")
            )
        names = ["h", "c"] if self.kind == "LSTM" else ["h"]
        st = ", ".join(
            f"{n} (B, {h})" for c in self.cells for n, h in zip(names, c.state_sizes, strict=True)
        )
        return [
            *lines,
            f"    state: {st}" + ("" if self.streamable else " (not carried: go_backwards)"),
        ]


def rnn_flags(layer: Layer) -> dict:
    return {
        "return_sequences": layer.option("return_sequences", False, kind=bool),
        "return_state": layer.option("return_state", False, kind=bool),
        "go_backwards": layer.option("go_backwards", False, kind=bool),
        "zero_output_for_mask": layer.option("zero_output_for_mask", False, kind=bool),
    }


def recurrent_layer(layer: Layer, inputs: list[Spec]) -> Recurrent:
    """SimpleRNN / LSTM / GRU (CuDNNLSTM / CuDNNGRU are refused by name elsewhere)."""
    x = time_input(layer, inputs)
    layer.check(CELL_OPTIONS[layer.cls] | RNN_OPTIONS)
    cell = Cell(layer.cls, cell_options(layer, layer.cls), x.shape[-1], layer.keras)
    return Recurrent(layer, [cell], rnn_flags(layer), None, x)


kind("SimpleRNN", "LSTM", "GRU", states_as_inputs=True)(recurrent_layer)


class CuDNN(Recurrent):
    """Keras 2's CuDNNLSTM / CuDNNGRU: exactly nn.LSTM / nn.GRU (two biases, GRU reset
    after); written back as Keras 3's LSTM (biases summed) / GRU(reset_after=True)."""

    def parts(self) -> list[Part]:
        return [Part("cell", self.rnn, cudnn_rows(self.kind))]

    def write_parts(self) -> list[Part]:
        self.rnn.bias_hh_l0.requires_grad_(True)
        return [Part("cell", self.rnn, self.cells[0].rows())]

    def keras_entry(self) -> dict:
        e = super().keras_entry()
        return {**e, "class_name": self.kind}


@kind("CuDNNLSTM", "CuDNNGRU", states_as_inputs=True)
def cudnn_layer(layer: Layer, inputs: list[Spec]) -> Recurrent:
    x = time_input(layer, inputs)
    layer.check({"units", "return_sequences", "return_state", "go_backwards", "stateful"})
    k = layer.cls[len("CuDNN") :]
    o = {"units": layer.option("units", kind=int), "activation": "tanh", "use_bias": True}
    o["recurrent_activation"] = "sigmoid"
    if k == "GRU":
        o["reset_after"] = True
    cell = Cell(k, o, x.shape[-1], layer.keras)
    if k == "LSTM":  # both biases are real here
        cell.rnn.bias_hh_l0.requires_grad_(True)
    flags = rnn_flags(layer) | {"zero_output_for_mask": False}
    return CuDNN(layer, [cell], flags, None, x)


@kind("RNN", states_as_inputs=True)
def generic_rnn(layer: Layer, inputs: list[Spec]) -> Recurrent:
    """RNN(SimpleRNNCell / LSTMCell / GRUCell) and RNN(StackedRNNCells([...]))."""
    x = time_input(layer, inputs)
    layer.check({"cell"} | RNN_OPTIONS)
    cell = layer.sub("cell")
    subs = [cell]
    if cell.cls == "StackedRNNCells":
        cell.check({"cells"})
        entries = cell.cfg.get("cells")
        if not isinstance(entries, list) or not entries:
            raise cell.refuse("cells", entries, "a list of built-in cells")
        where = f"{layer.cls} {layer.name!r}: cells"
        subs = [Layer(*check_entry(e, where), layer.keras) for e in entries]
    cells, f = [], x.shape[-1]
    for s in subs:
        if s.cls not in CELLS:
            raise layer.refuse("cell", s.cls, f"cells ported: {', '.join(CELLS)}, StackedRNNCells")
        k = CELLS[s.cls]
        s.check(CELL_OPTIONS[k])
        cells.append(Cell(k, cell_options(s, k), f, layer.keras))
        f = cells[-1].hidden
    return Recurrent(layer, cells, rnn_flags(layer), [s.name for s in subs], x)
