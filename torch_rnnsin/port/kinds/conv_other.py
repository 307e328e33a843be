"""DepthwiseConv1D/2D, SeparableConv1D/2D (padding valid/same) and Conv1DTranspose.

    Depthwise  kernel (K..., C, M) -> depthwise.weight (C*M, 1, K...)  axes (n, n+1, 0..), reshaped
    Separable  depthwise_kernel as above; pointwise_kernel (1.., C*M, F) -> pointwise.weight (F, C*M, 1..)
    Transpose  kernel (K, O, I) -> convt.weight (I, O, K)  axes (2, 1, 0); bias added after the crop

Keras's depthwise output channel c * M + m is torch's grouped conv (groups = C) output.
Conv1DTranspose is TensorFlow's: the full transposed conv, cropped (same: start P // 2,
P = max(k_eff - s, 0)) or zero-extended at the end to Keras's length, then bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tables import Part, Row
from .activations import activation, function
from .base import Block, Layer, Spec, kind, window_steps, with_shape
from .conv import CONVS, DATA_FORMATS, out_size, pad_explicit, same_pads, spatial, to_first, to_last

OPTIONS = {
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "use_bias",
}


class Depthwise(Block):
    """DepthwiseConv (separable=False) or SeparableConv (a 1x1 pointwise conv after it)."""

    mask_rule = "none"

    def __init__(self, layer: Layer, x: Spec, n: int, separable: bool):
        layer.check(
            OPTIONS | {"depth_multiplier", "groups"} | ({"filters"} if separable else set())
        )
        k = layer.ints("kernel_size", n)
        s = layer.ints("strides", n, 1)
        d = layer.ints("dilation_rate", n, 1)
        m = layer.option("depth_multiplier", 1, kind=int)
        layer.option("groups", 1, allowed=(1,))  # Keras 2 writes it; always 1 here
        padding = layer.option("padding", "valid", allowed=("valid", "same"))
        fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
        use_bias = layer.option("use_bias", True, kind=bool)
        act = activation(layer)
        sizes, ch = spatial(layer, x, n, fmt)
        filters = layer.option("filters", kind=int) if separable else ch * m
        outs = [out_size(z, *ksd, padding) for z, *ksd in zip(sizes, k, s, d, strict=True)]
        if any(o is not None and o < 1 for o in outs):
            raise layer.fail(f"input sizes {sizes} are smaller than the dilated kernel {k}")
        super().__init__(
            layer, [with_shape(x, (*outs, filters) if fmt == "channels_last" else (filters, *outs))]
        )
        self.n, self.k, self.s, self.d, self.ch, self.m = n, k, s, d, ch, m
        self.padding, self.last, self.separable = padding, fmt == "channels_last", separable
        conv = CONVS[n]
        self.depthwise = conv(
            ch, ch * m, k, stride=s, dilation=d, groups=ch, bias=use_bias and not separable
        )
        self.pointwise = conv(ch * m, filters, 1, bias=use_bias) if separable else None
        self.activation, self.fn = act, function(act, layer.keras)
        self.config = {
            "kernel_size": list(k),
            "strides": list(s),
            "padding": padding,
            "data_format": fmt,
            "dilation_rate": list(d),
            "depth_multiplier": m,
            "activation": act,
            "use_bias": use_bias,
        } | ({"filters": filters} if separable else {})

    def mixes_steps(self) -> str | None:
        return window_steps("kernel", self.k, self.s, self.last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = to_first(x)  # (B, ..., C) -> (B, C, ...)
        pads = [(0, 0)] * self.n
        if self.padding == "same":
            pads = [
                same_pads(z, *ksd)
                for z, *ksd in zip(x.shape[2:], self.k, self.s, self.d, strict=True)
            ]
        y = self.depthwise(pad_explicit(x, pads))  # (B, C*M, ...)
        if self.pointwise is not None:
            y = self.pointwise(y)  # (B, F, ...)
        y = self.fn(y)
        return to_last(y) if self.last else y

    def parts(self) -> list[Part]:
        n, ksz = self.n, tuple(self.k)
        dw = Row(
            "depthwise_kernel" if self.separable else "kernel",
            "depthwise.weight",
            perm=(n, n + 1, *range(n)),
            shape=(self.ch, self.m, *ksz),
        )
        if not self.separable:
            rows = (dw, Row("bias", "depthwise.bias")) if self.depthwise.bias is not None else (dw,)
            return [Part("", self, rows)]
        pw = [Row("pointwise_kernel", "pointwise.weight", perm=(n + 1, n, *range(n)))]
        if self.pointwise.bias is not None:
            pw.append(Row("bias", "pointwise.bias"))
        return [Part("", self, (dw, *pw))]

    def describe(self) -> list[str]:
        c = self.depthwise
        line = f"  -> depthwise = nn.Conv{self.n}d({c.in_channels}, {c.out_channels}, {self.k}, groups={c.groups}), padding {self.padding} (F.pad)"
        if self.pointwise is not None:
            line += f"; pointwise = nn.Conv{self.n}d({c.out_channels}, {self.pointwise.out_channels}, 1)"
        return [f"{line}; then {self.activation}"]


@kind("DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")
def depthwise(layer: Layer, inputs: list[Spec]) -> Block:
    return Depthwise(layer, inputs[0], int(layer.cls[-2]), layer.cls.startswith("Separable"))


class Transpose1D(Block):
    mask_rule = "none"

    def __init__(self, layer: Layer, x: Spec):
        layer.check(OPTIONS | {"filters", "output_padding", "groups"})
        filters = layer.option("filters", kind=int)
        (k,), (s,) = layer.ints("kernel_size", 1), layer.ints("strides", 1, 1)
        (d,) = layer.ints("dilation_rate", 1, 1)
        if d != 1:
            raise layer.refuse("dilation_rate", layer.cfg.get("dilation_rate"), "only 1 is ported")
        layer.option("groups", 1, allowed=(1,))
        layer.option("output_padding", None, allowed=(None,))
        padding = layer.option("padding", "valid", allowed=("valid", "same"))
        fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
        use_bias = layer.option("use_bias", True, kind=bool)
        act = activation(layer)
        (size,), ch = spatial(layer, x, 1, fmt)
        out = None if size is None else self.length(size, k, s, padding)
        super().__init__(
            layer, [with_shape(x, (out, filters) if fmt == "channels_last" else (filters, out))]
        )
        self.k, self.s, self.padding, self.last = k, s, padding, fmt == "channels_last"
        self.convt = nn.ConvTranspose1d(ch, filters, k, stride=s, bias=use_bias)
        self.activation, self.fn = act, function(act, layer.keras)
        self.config = {
            "filters": filters,
            "kernel_size": [k],
            "strides": [s],
            "padding": padding,
            "output_padding": None,
            "data_format": fmt,
            "dilation_rate": [1],
            "activation": act,
            "use_bias": use_bias,
        }

    @staticmethod
    def length(size: int, k: int, s: int, padding: str) -> int:
        return size * s + (max(k - s, 0) if padding == "valid" else 0)

    def mixes_steps(self) -> str | None:
        return f"a transposed convolution spreads each step over {self.k} steps"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = to_first(x)  # (B, T, C) -> (B, C, T)
        full = F.conv_transpose1d(x, self.convt.weight, None, stride=self.s)  # (B, O, (T-1)s+k)
        start = max(self.k - self.s, 0) // 2 if self.padding == "same" else 0
        n = self.length(x.shape[-1], self.k, self.s, self.padding)  # traced while exporting
        y = F.pad(full, (-start, n + start - full.shape[-1]))  # crop / zero-extend to n
        if self.convt.bias is not None:
            y = y + self.convt.bias[:, None]
        y = self.fn(y)
        return to_last(y) if self.last else y

    def parts(self) -> list[Part]:
        rows = [Row("kernel", "weight", perm=(2, 1, 0))]
        if self.convt.bias is not None:
            rows.append(Row("bias", "bias"))
        return [Part("", self.convt, tuple(rows))]

    def describe(self) -> list[str]:
        c = self.convt
        return [
            f"  -> convt = nn.ConvTranspose1d({c.in_channels}, {c.out_channels}, {self.k}, stride={self.s}), "
            f"cropped to Keras's {self.padding} length, then bias, then {self.activation}"
        ]


@kind("Conv1DTranspose")
def conv1d_transpose(layer: Layer, inputs: list[Spec]) -> Block:
    return Transpose1D(layer, inputs[0])
