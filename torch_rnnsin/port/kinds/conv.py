"""Convolutions: Conv1D, Conv2D, Conv3D (padding valid/same/causal, strides, dilation, groups,
channels_last/first).

    ConvND  kernel (K..., I/groups, O) -> conv.weight (O, I/groups, K...)  axes (n+1, n, 0..n-1)
            bias (O,) -> conv.bias  as is

Keras is channels_last, torch channels_first: the block moves the channel axis around the
torch conv. Keras's (TensorFlow's) 'same' pads (k - 1) * d + 1 - ... in total, the extra one at
the end when odd; 'causal' pads (k - 1) * d at the start. Both padded explicitly with F.pad.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, kind, window_steps, with_shape

CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
DATA_FORMATS = ("channels_last", "channels_first")


def same_pads(size, k: int, s: int, d: int) -> tuple:
    """TensorFlow's 'same': (start, end) so that the output has ceil(size / s) steps.

    While tracing (ONNX export) the pads stay a function of the traced length, so the graph
    is right for any length, not only the example's."""
    if torch.jit.is_tracing():
        size = torch.as_tensor(size)
        steps = torch.div(size + s - 1, s, rounding_mode="floor")
        total = torch.clamp((steps - 1) * s + (k - 1) * d + 1 - size, min=0)
    else:
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def out_size(size: int | None, k: int, s: int, d: int, padding: str) -> int | None:
    if size is None:
        return None
    if padding in ("same", "causal"):
        return math.ceil(size / s)
    n = (size - (k - 1) * d - 1) // s + 1
    return n


def spatial(layer: Layer, x: Spec, n: int, data_format: str) -> tuple[list, int]:
    """The input's spatial sizes and channel count (both data formats)."""
    if len(x.shape) != n + 1:
        raise layer.fail(f"needs a rank-{n + 2} input, got rank {x.rank}")
    if x.dtype != "float32":
        raise layer.fail(f"needs a float32 input, got {x.dtype}")
    last = data_format == "channels_last"
    sizes, ch = (list(x.shape[:-1]), x.shape[-1]) if last else (list(x.shape[1:]), x.shape[0])
    if ch is None:
        raise layer.fail("needs an input with a known channel axis")
    return sizes, ch


def to_first(x: torch.Tensor) -> torch.Tensor:
    """(B, ..., C) -> (B, C, ...); explicit axes (ONNX's exporter mistraces movedim(-1, 1))."""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


def to_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, ..., C)."""
    return x.permute(0, *range(2, x.dim()), 1)


def pad_explicit(x: torch.Tensor, pads: list[tuple[int, int]], value: float = 0.0) -> torch.Tensor:
    """Pad the last len(pads) axes of a channels_first tensor; pads in axis order."""
    flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last axis first
    if torch.jit.is_tracing() or any(flat):
        return F.pad(x, flat, value=value)
    return x


class Conv(Block):
    def __init__(self, layer: Layer, x: Spec, n: int):
        layer.check(
            {
                "filters",
                "kernel_size",
                "strides",
                "padding",
                "data_format",
                "dilation_rate",
                "groups",
                "activation",
                "use_bias",
            }
        )
        filters = layer.option("filters", kind=int)
        k = layer.ints("kernel_size", n)
        s = layer.ints("strides", n, 1)
        d = layer.ints("dilation_rate", n, 1)
        groups = layer.option("groups", 1, kind=int)
        paddings = ("valid", "same", "causal") if n == 1 else ("valid", "same")
        padding = layer.option("padding", "valid", allowed=paddings)
        fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
        use_bias = layer.option("use_bias", True, kind=bool)
        act = activation(layer)
        sizes, ch = spatial(layer, x, n, fmt)
        if ch % groups or filters % groups:
            raise layer.fail(
                f"groups={groups} does not divide {ch} input channels and {filters} filters"
            )
        if padding == "valid" and any(
            z is not None and z < (kk - 1) * dd + 1 for z, kk, dd in zip(sizes, k, d, strict=True)
        ):
            raise layer.fail(f"input sizes {sizes} are smaller than the dilated kernel {k}")
        outs = [
            out_size(z, kk, ss, dd, padding) for z, kk, ss, dd in zip(sizes, k, s, d, strict=True)
        ]
        shape = (*outs, filters) if fmt == "channels_last" else (filters, *outs)
        super().__init__(layer, [with_shape(x, shape)])
        self.mask_rule = "none"  # Keras convolutions drop the mask
        self.n, self.k, self.s, self.d = n, k, s, d
        self.padding, self.last = padding, fmt == "channels_last"
        self.conv = CONVS[n](ch, filters, k, stride=s, dilation=d, groups=groups, bias=use_bias)
        self.activation, self.fn = act, function(act, layer.keras)
        self.config = {
            "filters": filters,
            "kernel_size": list(k),
            "strides": list(s),
            "padding": padding,
            "data_format": fmt,
            "dilation_rate": list(d),
            "groups": groups,
            "activation": act,
            "use_bias": use_bias,
        }

    def pads(self, x: torch.Tensor) -> list[tuple[int, int]]:
        sizes = x.shape[2:]
        if self.padding == "same":
            return [same_pads(z, *kd) for z, *kd in zip(sizes, self.k, self.s, self.d, strict=True)]
        if self.padding == "causal":
            return [((self.k[0] - 1) * self.d[0], 0)]
        return [(0, 0)] * self.n

    def mixes_steps(self) -> str | None:
        return window_steps("kernel", self.k, self.s, self.last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = to_first(x)  # (B, ..., C) -> (B, C, ...)
        y = self.fn(self.conv(pad_explicit(x, self.pads(x))))  # (B, O, ...)
        return to_last(y) if self.last else y

    def parts(self) -> list[Part]:
        n = self.n
        rows = [Row("kernel", "weight", perm=(n + 1, n, *range(n)))]
        if self.conv.bias is not None:
            rows.append(Row("bias", "bias"))
        return [Part("", self.conv, tuple(rows))]

    def describe(self) -> list[str]:
        c = self.conv
        fmt = "channels_last, moved to channels_first around it" if self.last else "channels_first"
        return [
            f"  -> conv = nn.Conv{self.n}d({c.in_channels}, {c.out_channels}, {tuple(c.kernel_size)}, "
            f"stride={tuple(c.stride)}, dilation={tuple(c.dilation)}, groups={c.groups}, "
            f"bias={c.bias is not None}), padding {self.padding} (F.pad), then {self.activation}; {fmt}"
        ]


@kind("Conv1D", "Conv2D", "Conv3D")
def conv(layer: Layer, inputs: list[Spec]) -> Block:
    return Conv(layer, inputs[0], int(layer.cls[4]))
