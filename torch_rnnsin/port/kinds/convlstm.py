"""ConvLSTM1D / ConvLSTM2D (channels_last): Keras's cell over time, with its state.

cell kernel (*K, C, 4F) -> x_conv.weight (4F, C, *K)  axes permuted; gate blocks i, f, c, o
cell recurrent_kernel (*K, F, 4F) -> h_conv.weight (4F, F, *K); padding "same", no bias
cell bias (4F,) -> x_conv.bias
    i = ra(x_i + h_i); f = ra(x_f + h_f); c = f * c + i * act(x_c + h_c); o = ra(x_o + h_o)
    h = o * act(c)

The state is h, c: (B, *S', F) maps each (S' the output's spatial size). As for LSTM:
``initial_state=[h, c]``, ``return_state`` adds [h, c], ``go_backwards`` reads reversed,
masks (B, T) keep the state and repeat the output at a masked step; ``stateful`` is
accepted (the state is carried explicitly). Input strides apply to the input convolution
only (Keras's); "same" with strides pads as TensorFlow does (the extra one after).
"""

from __future__ import annotations

import torch
import torch.nn.functional as fn
from torch import nn

from ...common.errors import Refused
from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, carried_outputs, kind, with_shape

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
PERM = {1: (2, 1, 0), 2: (3, 2, 0, 1)}  # Keras (*K, In, Out) -> torch (Out, In, *K)
AXIS_ACTIVATIONS = ("softmax", "log_softmax", "glu")  # not elementwise
FLAGS = ("return_sequences", "return_state", "go_backwards", "zero_output_for_mask")


def out_size(d: int, k: int, s: int, dil: int, pad: str) -> int:
    """Keras's output length along one spatial axis."""
    return -(-d // s) if pad == "same" else (d - dil * (k - 1) - 1) // s + 1


def same_pads(d: int, k: int, s: int, dil: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) along one axis."""
    total = max((out_size(d, k, s, dil, "same") - 1) * s + dil * (k - 1) + 1 - d, 0)
    return total // 2, total - total // 2


class ConvLSTM(Block):
    own_code = "Keras's ConvLSTM step over torch convolutions"
    not_streamable = "go_backwards=True reads the sequence from its end"
    loops_in_python = True  # steps(); ONNX export runs it as a scripted Loop

    def __init__(self, layer: Layer, x: Spec, rank: int, o: dict, flags: dict):
        k, f, pad, s, dil = (
            o["kernel_size"], o["filters"], o["padding"], o["strides"], o["dilation_rate"]
        )  # fmt: skip
        space = x.shape[1:-1]
        if any(d < dil[i] * (k[i] - 1) + 1 for i, d in enumerate(space)) and pad == "valid":
            raise layer.fail(f"input {space} is smaller than the kernel {k}")
        out = tuple(out_size(d, k[i], s[i], dil[i], pad) for i, d in enumerate(space))
        y = with_shape(x, (x.shape[0], *out, f) if flags["return_sequences"] else (*out, f))
        states = [with_shape(x, (*out, f))] * 2
        super().__init__(layer, [y, *states] if flags["return_state"] else [y])
        strided_same = pad == "same" and any(v > 1 for v in s)
        # F.pad's order: the last axis first, (before, after) each
        self.pads = (
            [p for i in reversed(range(rank)) for p in same_pads(space[i], k[i], s[i], dil[i])]
            if strided_same
            else None
        )
        self.x_conv = CONV[rank](
            x.shape[-1], 4 * f, k, stride=s, dilation=dil, bias=o["use_bias"],
            padding=0 if strided_same else pad,
        )  # fmt: skip
        self.h_conv = CONV[rank](f, 4 * f, k, padding="same", bias=False)
        self.rank, self.filters, self.o, self.flags = rank, f, o, flags
        self.keras = layer.keras  # 2 or 3: hard_sigmoid's formula
        self.state_sizes = (f, f)
        self.space = out
        self.streamable = not flags["go_backwards"]
        self.act, self.ract = (
            function(o["activation"], layer.keras),
            function(o["recurrent_activation"], layer.keras),
        )
        flags_out = {key: v for key, v in flags.items() if key != "zero_output_for_mask" or v}
        self.config = dict(o, **flags_out, data_format="channels_last")

    @property
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return ((*self.space, self.filters),) * 2  # h, c: (*S', F) each

    def first(self, t: torch.Tensor) -> torch.Tensor:  # (B, *S, C) -> (B, C, *S)
        return t.permute(0, self.rank + 1, *range(1, self.rank + 1))

    def last(self, t: torch.Tensor) -> torch.Tensor:  # (B, C, *S) -> (B, *S, C)
        return t.permute(0, *range(2, self.rank + 2), 1)

    def run(self, x: torch.Tensor, state: list | None, mask: torch.Tensor | None):
        """x (B, T, *S, C), state [h, c] (B, *S', F) -> (Keras's output, [h, c])."""
        self.masked = mask is not None
        if self.flags["go_backwards"]:  # Keras reads reversed; a sequence output stays reversed
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        B, T = x.shape[:2]
        xt = self.first(x.reshape(B * T, *x.shape[2:]))  # (B*T, C, *S)
        if self.pads is not None:
            xt = fn.pad(xt, self.pads)
        xs = self.x_conv(xt)  # (B*T, 4F, *S')
        xs = xs.reshape(B, T, *xs.shape[1:])
        if state is None:
            h = xs.new_zeros((B, self.filters, *xs.shape[3:]))  # (B, F, *S')
            c = torch.zeros_like(h)
        else:
            h, c = (self.first(s) for s in state)
        seq, last, h, c = self.steps(xs, h, c, mask, self.flags["return_sequences"])
        if self.flags["return_sequences"]:
            y = seq.permute(0, 1, *range(3, self.rank + 3), 2)  # (B, T, *S', F)
            if mask is not None and self.flags["zero_output_for_mask"]:
                y = y * mask.view(B, T, *[1] * (self.rank + 1)).to(y.dtype)
        else:
            y = self.last(last)  # (B, *S', F)
        return y, [self.last(h), self.last(c)]

    def steps(self, xs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, mask, seq: bool):
        """The time loop: xs (B, T, 4F, *S') the input's convolution, h, c (B, F, *S'), mask
        (B, T) bool or None -> (outputs (B, T, F, *S') if seq else None, the last output, h, c).
        ONNX export swaps in a TorchScript loop of the same maths (export/onnx.py)."""
        ys, prev = [], torch.zeros_like(h)
        for t in range(xs.shape[1]):
            z = xs[:, t] + self.h_conv(h)  # (B, 4F, *S')
            zi, zf, zc, zo = z.chunk(4, dim=1)
            c2 = self.ract(zf) * c + self.ract(zi) * self.act(zc)
            h2 = self.ract(zo) * self.act(c2)
            if mask is None:
                h, c, prev = h2, c2, h2
            else:  # Keras: a masked step keeps the state and repeats the output
                m = mask[:, t].view(-1, *[1] * (self.rank + 1))
                h, c = torch.where(m, h2, h), torch.where(m, c2, c)
                prev = torch.where(m, h2, prev)
            if seq:
                ys.append(prev)
        return (torch.stack(ys, 1) if seq else None), prev, h, c

    def timed_outputs(self, timed: list[bool]) -> list[bool] | str:
        return carried_outputs(self, timed, self.flags["return_sequences"])

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        y, new = self.run(x, list(state) or None, None)
        return (y, *new) if self.flags["return_state"] else y

    def apply(self, xs, masks, kwargs, state=None):
        init = kwargs.get("initial_state")
        if init is not None and len(init) != 2:
            raise Refused(
                f"{self.keras_class} {self.keras_name!r}: {len(init)} initial states, expected 2 (h, c)"
            )
        mask = kwargs.get("mask", masks[0] if masks else None)
        if mask is not None and (mask.dim() != 2 or mask.dtype != torch.bool):
            raise Refused(
                f"{self.keras_class} {self.keras_name!r}: mask of shape {tuple(mask.shape)} is not supported (a (batch, time) bool mask)"
            )
        y, new = self.run(xs[0], init if init is not None else state, mask)
        outs = [y, *new] if self.flags["return_state"] else [y]
        return outs, (mask if self.flags["return_sequences"] else None), new

    def parts(self) -> list[Part]:
        p = PERM[self.rank]
        rows = [
            Row("kernel", "x_conv.weight", perm=p),
            Row("recurrent_kernel", "h_conv.weight", perm=p),
        ]
        if self.x_conv.bias is not None:
            rows.append(Row("bias", "x_conv.bias"))
        return [Part("cell", self, tuple(rows))]

    def describe(self) -> list[str]:
        on = [key for key in FLAGS if self.flags[key]]
        pad = f", TF 'same' pads {self.pads}" if self.pads else ""
        st = ", ".join(f"{n} (B, {', '.join(map(str, self.state_shapes[0]))})" for n in "hc")
        return [
            f"  -> x_conv = {self.x_conv}{pad}, h_conv = {self.h_conv}; gates i, f, c, o; own step"
            + (f"  ({', '.join(on)})" if on else ""),
            f"    state: {st}" + ("" if self.streamable else " (not carried: go_backwards)"),
        ]


@kind("ConvLSTM1D", "ConvLSTM2D", states_as_inputs=True)
def conv_lstm(layer: Layer, inputs: list[Spec]) -> Block:
    rank = int(layer.cls[-2])
    layer.check(
        {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
         "activation", "recurrent_activation", "use_bias", "return_sequences", "return_state",
         "go_backwards", "stateful", "zero_output_for_mask"}
    )  # fmt: skip
    layer.option("data_format", "channels_last", allowed=("channels_last", None))
    layer.option("stateful", False, kind=bool)  # the state is carried explicitly
    o = {
        "filters": layer.option("filters", kind=int),
        "kernel_size": list(layer.ints("kernel_size", rank)),
        "strides": list(layer.ints("strides", rank, 1)),
        "padding": layer.option("padding", "valid", allowed=("valid", "same")),
        "dilation_rate": list(layer.ints("dilation_rate", rank, 1)),
        "activation": activation(layer, "activation", "tanh"),
        "recurrent_activation": activation(layer, "recurrent_activation", "sigmoid"),
        "use_bias": layer.option("use_bias", True, kind=bool),
    }
    for key in ("activation", "recurrent_activation"):
        if o[key] in AXIS_ACTIVATIONS:  # over channels in Keras; the maps here are (B, F, *S')
            raise layer.refuse(key, o[key], "ConvLSTM ports elementwise activations")
    flags = {key: layer.option(key, False, kind=bool) for key in FLAGS}
    x = inputs[0]
    if len(x.shape) != rank + 2 or None in x.shape[1:] or x.dtype != "float32":
        raise layer.fail(
            f"needs a float32 (batch, time, {'space, ' * rank}channels) input, got {x.shape}"
        )
    return ConvLSTM(layer, x, rank, o, flags)
