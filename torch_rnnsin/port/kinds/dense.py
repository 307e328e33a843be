"""Dense (on the last axis) and TimeDistributed(any layer kind).

Dense  kernel (In, U) -> linear.weight (U, In)  transposed;  bias (U,) -> linear.bias
"""

from __future__ import annotations

import torch
from torch import nn

from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, build, entry, kind, with_shape


class Dense(Block):
    per_step = "features"

    def __init__(self, layer: Layer, x: Spec):
        layer.check({"units", "activation", "use_bias"})
        units = layer.option("units", kind=int)
        use_bias = layer.option("use_bias", True, kind=bool)
        act = activation(layer)
        if not x.shape or x.shape[-1] is None:
            raise layer.fail("needs an input with a known last axis")
        if x.dtype != "float32":
            raise layer.fail(f"needs a float32 input, got {x.dtype}")
        super().__init__(layer, [with_shape(x, (*x.shape[:-1], units))])
        self.linear = nn.Linear(x.shape[-1], units, bias=use_bias)
        self.activation, self.fn = act, function(act, layer.keras)
        self.config = {"units": units, "activation": act, "use_bias": use_bias}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.linear(x))  # (..., In) -> (..., U)

    def parts(self) -> list[Part]:
        rows = [Row("kernel", "weight", transpose=True)]
        if self.linear.bias is not None:
            rows.append(Row("bias", "bias"))
        return [Part("", self.linear, tuple(rows))]

    def describe(self) -> list[str]:
        m = self.linear
        return [
            f"  -> linear = nn.Linear({m.in_features}, {m.out_features}, bias={m.bias is not None}), then {self.activation}"
        ]


@kind("Dense")
def dense(layer: Layer, inputs: list[Spec]) -> Block:
    return Dense(layer, inputs[0])


class TimeDistributed(Block):
    """The inner layer applied to every time step: (B, T, ...) -> (B * T, ...) -> (B, T, ...)."""

    per_step = "elementwise"  # each step on its own, whatever the inner layer does

    def __init__(self, layer: Layer, inner: Block, x: Spec):
        ys = [with_shape(s, (x.shape[0], *s.shape)) for s in inner.output_specs]
        super().__init__(layer, ys)
        self.layer = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        y = self.layer(x.reshape(B * T, *x.shape[2:]))  # (B*T, ...)
        return y.reshape(B, T, *y.shape[1:])

    def parts(self) -> list[Part]:
        return [Part(f"layer/{p.sub}".rstrip("/"), p.module, p.rows) for p in self.layer.parts()]

    def keras_entry(self) -> dict:
        return entry(
            "TimeDistributed", {"name": self.keras_name, "layer": self.layer.keras_entry()}
        )

    def describe(self) -> list[str]:
        inner = self.layer
        return [
            f"  layer: {inner.keras_class} {inner.keras_name!r} on every time step",
            *inner.describe(),
        ]


@kind("TimeDistributed")
def time_distributed(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"layer"})
    x = inputs[0]
    if len(x.shape) < 2:
        raise layer.fail(f"needs a (batch, time, ...) input, got rank {x.rank}")
    inner = layer.sub("layer")
    block = build(inner, [with_shape(x, x.shape[1:])])
    if len(block.output_specs) != 1:
        raise layer.refuse("layer", inner.cls, "a layer with one output (no return_state)")
    return TimeDistributed(layer, block, x)
