"""ConvLSTM1D / ConvLSTM2D (channels_last, strides 1): Keras's cell over time, whole sequences.

cell kernel (*K, C, 4F) -> x_conv.weight (4F, C, *K)  axes permuted; gate blocks i, f, c, o
cell recurrent_kernel (*K, F, 4F) -> h_conv.weight (4F, F, *K); padding "same", no bias
cell bias (4F,) -> x_conv.bias
    i = ra(x_i + h_i); f = ra(x_f + h_f); c = f * c + i * act(x_c + h_c); o = ra(x_o + h_o)
    h = o * act(c)
"""

from __future__ import annotations

import torch
from torch import nn

from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, kind, with_shape

CONV = {1: nn.Conv1d, 2: nn.Conv2d}
PERM = {1: (2, 1, 0), 2: (3, 2, 0, 1)}  # Keras (*K, In, Out) -> torch (Out, In, *K)


class ConvLSTM(Block):
    streamable = False
    not_streamable = "its carried state is a feature map, not a (batch, units) vector"
    own_code = "Keras's ConvLSTM step over torch convolutions"

    def __init__(self, layer: Layer, x: Spec, rank: int, o: dict):
        k, f, pad = o["kernel_size"], o["filters"], o["padding"]
        space = [
            None if d is None else (d if pad == "same" else d - (k[i] - 1) * o["dilation_rate"][i])
            for i, d in enumerate(x.shape[1:-1])
        ]
        if any(d is not None and d < 1 for d in space):
            raise layer.fail(f"input {x.shape[1:-1]} is smaller than the kernel {k}")
        out = (*space, f)
        super().__init__(
            layer, [with_shape(x, (x.shape[0], *out) if o["return_sequences"] else out)]
        )
        c = x.shape[-1]
        self.x_conv = CONV[rank](
            c, 4 * f, k, padding=pad, dilation=o["dilation_rate"], bias=o["use_bias"]
        )
        self.h_conv = CONV[rank](f, 4 * f, k, padding="same", bias=False)
        self.rank, self.filters, self.o = rank, f, o
        self.act, self.ract = (
            function(o["activation"], layer.keras),
            function(o["recurrent_activation"], layer.keras),
        )
        self.config = dict(o, strides=[1] * rank, data_format="channels_last")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, *S, C)
        B, T = x.shape[:2]
        move = (0, self.rank + 1, *range(1, self.rank + 1))  # channels_last -> channels_first
        xs = self.x_conv(x.reshape(B * T, *x.shape[2:]).permute(move))  # (B*T, 4F, *S')
        xs = xs.reshape(B, T, *xs.shape[1:])
        h = xs.new_zeros((B, self.filters, *xs.shape[3:]))
        c = torch.zeros_like(h)
        ys = []
        for t in range(T):
            z = xs[:, t] + self.h_conv(h)  # (B, 4F, *S')
            zi, zf, zc, zo = z.chunk(4, dim=1)
            c = self.ract(zf) * c + self.ract(zi) * self.act(zc)
            h = self.ract(zo) * self.act(c)
            ys.append(h)
        back = (0, *range(2, self.rank + 2), 1)  # channels_first -> channels_last
        if self.o["return_sequences"]:
            return torch.stack(ys, 1).permute(0, 1, *(d + 1 for d in back[1:]))
        return h.permute(back)

    def apply(self, xs, masks, kwargs, state=None):
        if (masks and masks[0] is not None) or kwargs.get("mask") is not None:
            raise Layer(self.keras_class, self.keras_name, {}).fail(
                "a masked input is not supported"
            )
        if kwargs.get("initial_state") is not None:
            raise Layer(self.keras_class, self.keras_name, {}).fail(
                "initial_state is not supported"
            )
        return [self(xs[0])], None, None

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
        return [f"  -> x_conv = {self.x_conv}, h_conv = {self.h_conv}; gates i, f, c, o; own step"]


@kind("ConvLSTM1D", "ConvLSTM2D")
def conv_lstm(layer: Layer, inputs: list[Spec]) -> Block:
    rank = int(layer.cls[-2])
    layer.check(
        {"filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
         "activation", "recurrent_activation", "use_bias", "return_sequences", "return_state",
         "go_backwards", "stateful",
         "zero_output_for_mask"}  # the last: masks are refused, so it changes nothing
    )  # fmt: skip
    if layer.ints("strides", rank, 1) != (1,) * rank:
        raise layer.refuse("strides", layer.cfg.get("strides"), "1")
    layer.option("data_format", "channels_last", allowed=("channels_last", None))
    for key in ("return_state", "go_backwards", "stateful"):
        layer.option(key, False, allowed=(False,))
    o = {
        "filters": layer.option("filters", kind=int),
        "kernel_size": list(layer.ints("kernel_size", rank)),
        "padding": layer.option("padding", "valid", allowed=("valid", "same")),
        "dilation_rate": list(layer.ints("dilation_rate", rank, 1)),
        "activation": activation(layer, "activation", "tanh"),
        "recurrent_activation": activation(layer, "recurrent_activation", "sigmoid"),
        "use_bias": layer.option("use_bias", True, kind=bool),
        "return_sequences": layer.option("return_sequences", False, kind=bool),
    }
    x = inputs[0]
    if len(x.shape) != rank + 2 or None in x.shape[1:] or x.dtype != "float32":
        raise layer.fail(
            f"needs a float32 (batch, time, {'space, ' * rank}channels) input, got {x.shape}"
        )
    return ConvLSTM(layer, x, rank, o)
