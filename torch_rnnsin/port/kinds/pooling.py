"""Pooling: MaxPooling1D/2D/3D, AveragePooling1D/2D/3D, GlobalMax/GlobalAveragePooling1D/2D/3D.

Keras's 'same' pads like TensorFlow (the extra one at the end); padded cells never win a max
and are not counted in an average (sum over the window / count of real cells).
GlobalAveragePooling1D averages over the unmasked steps only, as Keras does; the other global
poolings take no mask (Keras 3 ignores it, Keras 2 refuses it). No parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Block, Layer, Spec, kind, window_steps, with_shape
from .conv import DATA_FORMATS, pad_explicit, same_pads, spatial, to_first, to_last

MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


class Pool(Block):
    def __init__(self, layer: Layer, x: Spec, n: int, op: str):
        layer.check({"pool_size", "strides", "padding", "data_format"})
        k = layer.ints("pool_size", n, 2)
        s = layer.ints("strides", n, None) if layer.cfg.get("strides") is not None else k
        padding = layer.option("padding", "valid", allowed=("valid", "same"))
        fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
        sizes, ch = spatial(layer, x, n, fmt)
        if padding == "valid" and any(
            z is not None and z < kk for z, kk in zip(sizes, k, strict=True)
        ):
            raise layer.fail(f"input sizes {sizes} are smaller than pool_size {k}")
        outs = [
            None if z is None else (math.ceil(z / ss) if padding == "same" else (z - kk) // ss + 1)
            for z, kk, ss in zip(sizes, k, s, strict=True)
        ]
        shape = (*outs, ch) if fmt == "channels_last" else (ch, *outs)
        super().__init__(layer, [with_shape(x, shape)])
        self.mask_rule = "none"  # Keras poolings drop the mask
        self.n, self.k, self.s, self.op = n, k, s, op
        self.padding, self.last = padding, fmt == "channels_last"
        self.config = {
            "pool_size": list(k),
            "strides": list(s),
            "padding": padding,
            "data_format": fmt,
        }

    def mixes_steps(self) -> str | None:
        return window_steps("pool", self.k, self.s, self.last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = to_first(x)  # (B, ..., C) -> (B, C, ...)
        pads = [(0, 0)] * self.n
        if self.padding == "same":
            pads = [
                same_pads(z, kk, ss, 1)
                for z, kk, ss in zip(x.shape[2:], self.k, self.s, strict=True)
            ]
        if self.op == "max":
            y = MAX[self.n](pad_explicit(x, pads, float("-inf")), self.k, self.s)
        else:
            y = AVG[self.n](pad_explicit(x, pads), self.k, self.s)
            if self.padding == "same":  # mean over the real cells only
                ones = torch.ones_like(x[:1, :1])  # (1, 1, ...)
                y = y / AVG[self.n](pad_explicit(ones, pads), self.k, self.s)
        return to_last(y) if self.last else y

    def describe(self) -> list[str]:
        how = "F.max_pool" if self.op == "max" else "F.avg_pool"
        same = "; same: padded cells excluded" if self.padding == "same" else ""
        return [f"  -> {how}{self.n}d(pool {self.k}, strides {self.s}){same} (no parameters)"]


@kind(*(f"{op}Pooling{n}D" for op in ("Max", "Average") for n in (1, 2, 3)))
def pool(layer: Layer, inputs: list[Spec]) -> Block:
    op = "max" if layer.cls.startswith("Max") else "avg"
    return Pool(layer, inputs[0], int(layer.cls[-2]), op)


class GlobalPool(Block):
    mask_rule = "none"

    def __init__(self, layer: Layer, x: Spec, n: int, op: str):
        layer.check({"data_format", "keepdims"})
        fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
        keepdims = layer.option("keepdims", False, kind=bool)
        _, ch = spatial(layer, x, n, fmt)
        last = fmt == "channels_last"
        ones = [1] * n if keepdims else []
        shape = (*ones, ch) if last else (ch, *ones)
        super().__init__(layer, [with_shape(x, shape)])
        self.n, self.op, self.last, self.keepdims = n, op, last, keepdims
        self.takes_mask = op == "avg" and n == 1
        self.axes = tuple(range(1, n + 1)) if last else tuple(range(2, n + 2))
        self.config = {"data_format": fmt, "keepdims": keepdims}

    def mixes_steps(self) -> str | None:
        return "it pools over every time step"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.op == "max":
            return x.amax(dim=self.axes, keepdim=self.keepdims)
        if mask is None:
            return x.mean(dim=self.axes, keepdim=self.keepdims)
        m = mask.unsqueeze(2 if self.last else 1)  # (B, T, 1) or (B, 1, T)
        total = torch.where(m, x, torch.zeros_like(x)).sum(dim=self.axes, keepdim=self.keepdims)
        return total / m.to(x.dtype).sum(dim=self.axes, keepdim=self.keepdims)

    def describe(self) -> list[str]:
        masked = ", over the unmasked steps" if self.takes_mask else ""
        return [f"  -> {self.op} over axes {self.axes}{masked} (no parameters)"]


@kind(*(f"Global{op}Pooling{n}D" for op in ("Max", "Average") for n in (1, 2, 3)))
def global_pool(layer: Layer, inputs: list[Spec]) -> Block:
    op = "max" if "Max" in layer.cls else "avg"
    return GlobalPool(layer, inputs[0], int(layer.cls[-2]), op)
