"""Activation layers with options: ReLU, LeakyReLU, PReLU, ELU, Softmax (mask-aware, as Keras),
Keras 2's ThresholdedReLU, and Rescaling (x * scale + offset, numbers only).

PReLU  alpha (input shape, shared axes 1) -> alpha  as is:  relu(x) - alpha * relu(-x)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...common.errors import Refused
from ..tables import Part, Row
from .base import Block, Layer, Spec, entry, kind
from .norm import axes, over_time


class ReLU(Block):
    """Keras's relu(x, negative_slope, max_value, threshold), step by step as Keras computes it."""

    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, slope: float, max_value, threshold: float):
        super().__init__(layer, [x])
        self.slope, self.max_value, self.threshold = slope, max_value, threshold
        self.config = {"max_value": max_value, "negative_slope": slope, "threshold": threshold}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, m, t = self.slope, self.max_value, self.threshold
        if s != 0 and m is None and t == 0:
            return F.leaky_relu(x, s)
        neg = F.relu(t - x) if s != 0 else None
        y = torch.where(x > t, x, torch.zeros_like(x)) if t != 0 else F.relu(x)
        if m is not None:
            y = torch.clamp(y, 0.0, m)
        return y - s * neg if neg is not None else y

    def describe(self) -> list[str]:
        return [
            f"  -> relu(negative_slope={self.slope}, max_value={self.max_value}, threshold={self.threshold})"
        ]


def _number(layer: Layer, key: str, default, minimum=None):
    value = layer.cfg.get(key, default)
    if isinstance(value, list) and len(value) == 1:  # a 0-d numpy array saved by Keras 2
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise layer.refuse(key, value, "a number")
    if minimum is not None and value < minimum:
        raise layer.refuse(key, value, f"a number >= {minimum}")
    return float(value)


@kind("ReLU")
def relu(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"max_value", "negative_slope", "threshold"})
    m = layer.cfg.get("max_value")
    m = None if m is None else _number(layer, "max_value", None, minimum=0)
    slope = _number(layer, "negative_slope", 0.0, minimum=0)
    return ReLU(layer, inputs[0], slope, m, _number(layer, "threshold", 0.0, minimum=0))


class Leaky(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, slope: float):
        super().__init__(layer, [x])
        self.slope = slope
        self.config = {"negative_slope": slope}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope)

    def describe(self) -> list[str]:
        return [f"  -> F.leaky_relu(negative_slope={self.slope})"]


@kind("LeakyReLU")
def leaky_relu(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"negative_slope", "alpha"})  # Keras 2 writes alpha
    if "negative_slope" in layer.cfg and "alpha" in layer.cfg:
        raise layer.fail("has both alpha and negative_slope")
    key = "alpha" if "alpha" in layer.cfg else "negative_slope"
    return Leaky(layer, inputs[0], _number(layer, key, 0.3))


class PReLU(Block):
    def __init__(self, layer: Layer, x: Spec, shared: list[int]):
        super().__init__(layer, [x])
        shape = tuple(1 if i + 1 in shared else n for i, n in enumerate(x.shape))
        self.alpha = nn.Parameter(torch.zeros(shape))
        self.config = {"shared_axes": shared or None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) - self.alpha * F.relu(-x)  # alpha broadcasts over the batch

    def mixes_steps(self) -> str | None:
        shared = self.alpha.dim() < 1 or self.alpha.shape[0] == 1
        return None if shared else "its alpha has one value per time step (axis 1 not shared)"

    def parts(self) -> list[Part]:
        return [Part("", self, (Row("alpha", "alpha"),))]

    def describe(self) -> list[str]:
        return ["  -> relu(x) - alpha * relu(-x)"]


@kind("PReLU")
def prelu(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"shared_axes"})
    x = inputs[0]
    value = layer.cfg.get("shared_axes")
    shared = [] if value is None else value if isinstance(value, list) else [value]
    if any(isinstance(a, bool) or not isinstance(a, int) or not 1 <= a < x.rank for a in shared):
        raise layer.refuse("shared_axes", value, f"axes 1..{x.rank - 1}")
    unknown = [i + 1 for i, n in enumerate(x.shape) if n is None and i + 1 not in shared]
    if unknown:
        raise layer.fail(f"axis {unknown[0]} has no known size and is not shared")
    return PReLU(layer, x, sorted(shared))


class ELU(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, alpha: float):
        super().__init__(layer, [x])
        self.alpha = alpha
        self.config = {"alpha": alpha}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)

    def describe(self) -> list[str]:
        return [f"  -> F.elu(alpha={self.alpha})"]


@kind("ELU")
def elu(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"alpha"})
    return ELU(layer, inputs[0], _number(layer, "alpha", 1.0))


class Softmax(Block):
    """Keras 3: masked entries -> -1e9 before, 0 after; Keras 2: adds -1e9 * (1 - mask)."""

    takes_mask = True

    def __init__(self, layer: Layer, x: Spec, ax: list[int]):
        super().__init__(layer, [x])
        self.axes, self.keras = ax, layer.keras
        self.config = {"axis": ax[0] if len(ax) == 1 else ax}

    def apply(self, xs, masks, kwargs, state=None):
        mask = kwargs.get("mask", masks[0] if masks else None)  # an explicit mask= wins
        return [self(xs[0], mask=mask)], self.compute_mask(xs, masks), None

    def mixes_steps(self) -> str | None:
        return over_time(self.axes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            if mask.dtype != torch.bool:
                mask = mask > 0.5  # Keras keeps the entries where the mask is > 0.5
            if mask.dim() > x.dim() or any(
                m not in (1, n) for m, n in zip(mask.shape[::-1], x.shape[::-1], strict=False)
            ):
                raise Refused(
                    f"{self.keras_class} {self.keras_name!r}: mask {tuple(mask.shape)} does not "
                    f"broadcast to the input {tuple(x.shape)} (Keras refuses it too)"
                )
            if self.keras == 2:
                x = x + (1.0 - mask.to(x.dtype)) * -1e9
            else:
                x = torch.where(mask, x, torch.full_like(x, -1e9))
        if len(self.axes) == 1:
            y = F.softmax(x, dim=self.axes[0])
        else:
            y = torch.exp(x - torch.logsumexp(x, dim=self.axes, keepdim=True))
        if mask is not None and self.keras == 3:
            y = torch.where(mask, y, torch.zeros_like(y))
        return y

    def describe(self) -> list[str]:
        masked = "-1e9, then 0" if self.keras == 3 else "+ -1e9 (Keras 2)"
        return [f"  -> softmax over axes {self.axes}; masked entries {masked}"]


@kind("Softmax")
def softmax(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axis"})
    x = inputs[0]
    return Softmax(layer, x, axes(layer, x, many=True))


class Thresholded(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, theta: float):
        super().__init__(layer, [x])
        self.theta = theta
        self.config = {"max_value": None, "negative_slope": 0.0, "threshold": theta}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x > self.theta).to(x.dtype)

    def keras_entry(self) -> dict:  # Keras 3 has no ThresholdedReLU: its ReLU(threshold) is it
        return entry("ReLU", {"name": self.keras_name, **self.config})

    def describe(self) -> list[str]:
        return [f"  -> x * (x > {self.theta})"]


@kind("ThresholdedReLU")
def thresholded_relu(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"theta"})
    return Thresholded(layer, inputs[0], _number(layer, "theta", 1.0, minimum=0))


class Rescaling(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, x: Spec, scale: float, offset: float):
        super().__init__(layer, [x])
        self.scale, self.offset = scale, offset
        self.config = {"scale": scale, "offset": offset}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset

    def describe(self) -> list[str]:
        return [f"  -> x * {self.scale} + {self.offset}"]


@kind("Rescaling")
def rescaling(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"scale", "offset"})
    x = inputs[0]
    if x.dtype != "float32":
        raise layer.fail(f"needs a float32 input, got {x.dtype}")
    return Rescaling(layer, x, _number(layer, "scale", None), _number(layer, "offset", 0.0))
