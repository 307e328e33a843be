"""Keras 3 op layers: the functional API records tensor arithmetic as layers of module
``keras.src.ops.*`` — above all the mask computations (``NotEqual`` after an Embedding with
mask_zero, ``Any`` after a Masking), whose results are then passed as ``mask=``.

Each op takes its tensor argument(s) positionally; constants arrive as ``arg1``.
"""

from __future__ import annotations

import torch

from ...common.errors import Refused
from .base import Block, Layer, Spec, kind

BINARY = {
    "NotEqual": torch.ne,
    "Equal": torch.eq,
    "Greater": torch.gt,
    "GreaterEqual": torch.ge,
    "Less": torch.lt,
    "LessEqual": torch.le,
    "LogicalAnd": torch.logical_and,
    "LogicalOr": torch.logical_or,
}
REDUCE = {"Any": torch.any, "All": torch.all}


class Binary(Block):
    mask_rule = "none"
    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, fn):
        super().__init__(layer, [Spec(x.shape, "bool")])
        self.fn = fn

    def forward(self, a: torch.Tensor, b) -> torch.Tensor:
        return self.fn(a, b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=a.dtype))

    def apply(self, xs, masks, kwargs, state=None):
        b = xs[1] if len(xs) > 1 else kwargs.get("arg1")
        if b is None or isinstance(b, bool) or not isinstance(b, int | float | torch.Tensor):
            raise Refused(f"{self.keras_class} {self.keras_name!r}: second argument {b!r}")
        return [self(xs[0], b)], None, None

    def keras_entry(self) -> dict:
        return {
            "module": "keras.src.ops.numpy",
            "class_name": self.keras_class,
            "config": {"name": self.keras_name},
            "registered_name": self.keras_class,
        }

    def describe(self) -> list[str]:
        return [f"  -> torch.{self.fn.__name__} (a mask computation Keras recorded)"]


@kind(*BINARY)
def binary(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(set())
    return Binary(layer, inputs[0], BINARY[layer.cls])


class Reduce(Block):
    mask_rule = "none"

    def __init__(self, layer: Layer, x: Spec, axis, keepdims: bool):
        rank = len(x.shape) + 1
        axes = [axis] if isinstance(axis, int) else list(axis)
        axes = sorted(a % rank for a in axes)
        if 0 in axes:
            raise layer.refuse("axis", axis, "axes other than the batch axis")
        shape = [d for i, d in enumerate(x.shape, start=1) if i not in axes or keepdims]
        if keepdims:
            shape = [1 if i in axes else d for i, d in enumerate(x.shape, start=1)]
        super().__init__(layer, [Spec(tuple(shape), "bool")])
        self.fn, self.axes, self.keepdims = REDUCE[layer.cls], tuple(axes), keepdims
        self.config = {"axis": axis, "keepdims": keepdims}

    def mixes_steps(self) -> str | None:
        return "it reduces over axis 1, the time axis" if 1 in self.axes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.bool()
        for a in reversed(self.axes):
            x = self.fn(x, dim=a, keepdim=self.keepdims)
        return x

    def keras_entry(self) -> dict:
        cfg = {"name": self.keras_name, **self.config}
        return {
            "module": "keras.src.ops.numpy",
            "class_name": self.keras_class,
            "config": cfg,
            "registered_name": self.keras_class,
        }

    def describe(self) -> list[str]:
        return [
            f"  -> torch.{self.keras_class.lower()} over axes {self.axes} (a mask computation Keras recorded)"
        ]


@kind(*REDUCE)
def reduce(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axis", "keepdims"})
    axis = layer.cfg.get("axis")
    ok = (isinstance(axis, int) and not isinstance(axis, bool)) or (
        isinstance(axis, list)
        and axis
        and all(isinstance(a, int) and not isinstance(a, bool) for a in axis)
    )
    if not ok:
        raise layer.refuse("axis", axis, "an axis or a list of axes")
    return Reduce(layer, inputs[0], axis, layer.option("keepdims", False, kind=bool))
