"""Normalization layers at inference: BatchNormalization (moving statistics), LayerNormalization,
GroupNormalization, UnitNormalization. Keras axes count the batch axis (axis -1 of (B, T, F) is F).

    BatchNormalization  gamma, beta, moving_mean, moving_variance (C,) -> weight, bias,
                        running_mean, running_var (C,)  as is  (F.batch_norm, axis moved to 1)
    LayerNormalization  gamma, beta (the normalized axes' sizes) -> weight, bias  (F.layer_norm,
                        axes moved last); rms_scaling: x * rsqrt(var + eps) * gamma (Keras's own)
    GroupNormalization  gamma, beta (C,) -> weight, bias  (F.group_norm, axis moved to 1)
    RMSNormalization    scale (the normalized axes' sizes) -> weight:  x * rsqrt(mean(x^2) + eps) * scale
    UnitNormalization   no weights: x * min(rsqrt(sum(x^2)), 1e12) over the axes
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tables import Part, Row
from .base import Block, Layer, Spec, kind

AFFINE = {"center", "scale", "epsilon", "axis"}


def axes(layer: Layer, x: Spec, many: bool) -> list[int]:
    """The layer's axis option as sorted positive axes (batch axis 0 excluded), each known."""
    value = layer.cfg.get("axis", -1)
    vals = value if isinstance(value, list | tuple) else [value]
    out = []
    for a in vals:
        if isinstance(a, bool) or not isinstance(a, int) or not -x.rank <= a < x.rank:
            raise layer.refuse("axis", value, f"axes of a rank-{x.rank} input, not the batch axis")
        a = a % x.rank
        if a == 0 or x.shape[a - 1] is None:
            raise layer.refuse("axis", value, "a non-batch axis of known size")
        out.append(a)
    if not out or len(set(out)) != len(out) or (len(out) > 1 and not many):
        raise layer.refuse("axis", value, "one axis" if not many else "distinct axes")
    return sorted(out)


def _float32(layer: Layer, x: Spec) -> None:
    if x.dtype != "float32":
        raise layer.fail(f"needs a float32 input, got {x.dtype}")


def _affine(block: nn.Module, shape: tuple[int, ...], center: bool, scale: bool) -> None:
    block.weight = nn.Parameter(torch.ones(shape)) if scale else None
    block.bias = nn.Parameter(torch.zeros(shape)) if center else None


def _affine_rows(block: nn.Module) -> list[Row]:
    rows = [Row("gamma", "weight")] if block.weight is not None else []
    return rows + ([Row("beta", "bias")] if block.bias is not None else [])


def over_time(axes: list[int]) -> str | None:
    """The reason a normalization over these Keras axes mixes time steps (axis 1), or None."""
    return "it normalizes over axis 1, the time axis" if 1 in axes else None


class BatchNorm(Block):
    per_step = "elementwise"  # moving statistics at inference

    def __init__(self, layer: Layer, x: Spec, axis: int, center: bool, scale: bool, eps: float):
        super().__init__(layer, [x])
        c = x.shape[axis - 1]
        self.axis, self.eps = axis, eps
        _affine(self, (c,), center, scale)
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.config = {"axis": axis, "epsilon": eps, "center": center, "scale": scale}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(self.axis, 1)  # (B, C, ...)
        y = F.batch_norm(
            y, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )
        return y.movedim(1, self.axis)

    def parts(self) -> list[Part]:
        stats = [Row("moving_mean", "running_mean"), Row("moving_variance", "running_var")]
        return [Part("", self, (*_affine_rows(self), *stats))]

    def describe(self) -> list[str]:
        return [
            f"  -> F.batch_norm over axis {self.axis} with the moving statistics, eps={self.eps}"
            f", scale={self.weight is not None}, center={self.bias is not None}"
        ]


@kind("BatchNormalization")
def batch_normalization(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(AFFINE)
    x = inputs[0]
    _float32(layer, x)
    (axis,) = axes(layer, x, many=False)
    center = layer.option("center", True, kind=bool)
    scale = layer.option("scale", True, kind=bool)
    eps = float(layer.option("epsilon", 1e-3, kind=float))
    return BatchNorm(layer, x, axis, center, scale, eps)


class LayerNorm(Block):
    def __init__(
        self, layer: Layer, x: Spec, ax: list[int], center: bool, scale: bool, eps: float, rms: bool
    ):
        super().__init__(layer, [x])
        self.axes, self.eps, self.rms = ax, eps, rms
        self.shape = tuple(x.shape[a - 1] for a in ax)
        _affine(self, self.shape, center and not rms, scale or rms)
        self.config = {"axis": ax, "epsilon": eps, "center": center, "scale": scale}
        if rms:
            self.config["rms_scaling"] = True

    def mixes_steps(self) -> str | None:
        return over_time(self.axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.axes)
        y = x.movedim(self.axes, list(range(x.dim() - n, x.dim())))  # (B, ..., *normalized)
        if self.rms:  # Keras's (deprecated) rms_scaling: scales by the variance, not the RMS
            dims = tuple(range(y.dim() - n, y.dim()))
            var = y.var(dim=dims, unbiased=False, keepdim=True)
            y = y * torch.rsqrt(var + self.eps) * self.weight
        else:
            y = F.layer_norm(y, self.shape, self.weight, self.bias, self.eps)
        return y.movedim(list(range(x.dim() - n, x.dim())), self.axes)

    def parts(self) -> list[Part]:
        return [Part("", self, tuple(_affine_rows(self)))]

    def describe(self) -> list[str]:
        how = "x * rsqrt(var + eps) * gamma" if self.rms else "F.layer_norm"
        return [f"  -> {how} over axes {self.axes}, eps={self.eps}"]


@kind("LayerNormalization")
def layer_normalization(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(AFFINE | {"rms_scaling"})
    x = inputs[0]
    _float32(layer, x)
    ax = axes(layer, x, many=True)
    center = layer.option("center", True, kind=bool)
    scale = layer.option("scale", True, kind=bool)
    rms = layer.option("rms_scaling", False, kind=bool)
    eps = float(layer.option("epsilon", 1e-3, kind=float))
    return LayerNorm(layer, x, ax, center, scale, eps, rms)


class GroupNorm(Block):
    def mixes_steps(self) -> str | None:
        return "its group statistics span every time step"

    def __init__(
        self, layer: Layer, x: Spec, axis: int, groups: int, center: bool, scale: bool, eps: float
    ):
        super().__init__(layer, [x])
        c = x.shape[axis - 1]
        self.axis, self.groups, self.eps = axis, groups, eps
        _affine(self, (c,), center, scale)
        self.config = {
            "groups": groups,
            "axis": axis,
            "epsilon": eps,
            "center": center,
            "scale": scale,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(self.axis, 1)  # (B, C, ...)
        y = F.group_norm(y, self.groups, self.weight, self.bias, self.eps)
        return y.movedim(1, self.axis)

    def parts(self) -> list[Part]:
        return [Part("", self, tuple(_affine_rows(self)))]

    def describe(self) -> list[str]:
        return [f"  -> F.group_norm({self.groups} groups) over axis {self.axis}, eps={self.eps}"]


@kind("GroupNormalization")
def group_normalization(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(AFFINE | {"groups"})
    x = inputs[0]
    _float32(layer, x)
    (axis,) = axes(layer, x, many=False)
    c = x.shape[axis - 1]
    groups = layer.cfg.get("groups", 32)
    groups = c if groups == -1 else groups
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or c % groups:
        raise layer.refuse("groups", layer.cfg.get("groups"), f"-1 or a divisor of {c} channels")
    center = layer.option("center", True, kind=bool)
    scale = layer.option("scale", True, kind=bool)
    eps = float(layer.option("epsilon", 1e-3, kind=float))
    return GroupNorm(layer, x, axis, groups, center, scale, eps)


class RMSNorm(Block):
    def __init__(self, layer: Layer, x: Spec, ax: list[int], eps: float):
        super().__init__(layer, [x])
        self.axes, self.eps = ax, eps
        self.weight = nn.Parameter(torch.ones(tuple(x.shape[a - 1] for a in ax)))
        self.config = {"axis": ax, "epsilon": eps}

    def mixes_steps(self) -> str | None:
        return over_time(self.axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.axes)
        y = x.movedim(self.axes, list(range(x.dim() - n, x.dim())))  # (B, ..., *normalized)
        dims = tuple(range(y.dim() - n, y.dim()))
        y = y * torch.rsqrt((y * y).mean(dim=dims, keepdim=True) + self.eps) * self.weight
        return y.movedim(list(range(x.dim() - n, x.dim())), self.axes)

    def parts(self) -> list[Part]:
        return [Part("", self, (Row("scale", "weight"),))]

    def describe(self) -> list[str]:
        return [f"  -> x * rsqrt(mean(x^2) + eps) * scale over axes {self.axes}, eps={self.eps}"]


@kind("RMSNormalization")
def rms_normalization(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axis", "epsilon"})
    x = inputs[0]
    _float32(layer, x)
    eps = float(layer.option("epsilon", 1e-6, kind=float))
    return RMSNorm(layer, x, axes(layer, x, many=True), eps)


class UnitNorm(Block):
    def __init__(self, layer: Layer, x: Spec, ax: list[int]):
        super().__init__(layer, [x])
        self.axes = ax
        self.config = {"axis": ax}

    def mixes_steps(self) -> str | None:
        return over_time(self.axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inv = torch.rsqrt((x * x).sum(dim=self.axes, keepdim=True))
        return x * torch.clamp(inv, max=1e12)

    def describe(self) -> list[str]:
        return [f"  -> x * min(rsqrt(sum(x^2)), 1e12) over axes {self.axes}"]


@kind("UnitNormalization")
def unit_normalization(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axis"})
    x = inputs[0]
    _float32(layer, x)
    return UnitNorm(layer, x, axes(layer, x, many=True))
