"""Shape layers (no parameters): Flatten, Reshape (incl. -1), Permute, RepeatVector,
ZeroPadding1D/2D/3D, Cropping1D/2D/3D, UpSampling1D/2D/3D (nearest). None of them passes a mask on
(Keras 3 drops it; Keras 2 refuses one)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import Block, Layer, Spec, kind, with_shape
from .conv import DATA_FORMATS, spatial, to_first, to_last


class Shape(Block):
    """One parameter-free tensor rearrangement ``fn`` (a method name) with its config."""

    mask_rule = "none"

    across_time = "it rearranges axis 1, the time axis"  # why it mixes steps (streaming)

    def __init__(self, layer: Layer, y: Spec, how: str, config: dict, **attrs):
        super().__init__(layer, [y])
        self.how, self.config = how, config
        for k, v in attrs.items():
            setattr(self, k, v)

    def mixes_steps(self) -> str | None:
        return self.across_time

    def describe(self) -> list[str]:
        return [f"  -> {self.how} (no parameters)"]


def _prod(dims) -> int | None:
    return None if any(d is None for d in dims) else math.prod(dims)


class Flatten(Shape):
    across_time = "it flattens the time axis into features"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first and x.dim() > 2:
            x = to_last(x)  # channels_first -> channels_last before flattening
        return x.reshape(x.shape[0], -1)  # (B, ...) -> (B, prod)


@kind("Flatten")
def flatten(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"data_format"})
    fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
    x = inputs[0]
    y = with_shape(x, (_prod(x.shape) if x.shape else 1,))
    first = fmt == "channels_first"
    how = "reshape (B, -1)" + (", channel axis moved last first" if first else "")
    return Flatten(layer, y, how, {"data_format": fmt}, first=first)


class Reshape(Shape):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target)

    def mixes_steps(self) -> str | None:
        return None if self.keeps_time else "it reshapes across axis 1, the time axis"


def keeps_time(x: Spec, target: tuple[int, ...]) -> bool:
    """Each step reshaped on its own: axis 1 stays (-1 there, or the same known length) and
    the rest holds one step's values, (B, T, 4) -> (B, T, 2, 2)."""
    per_step = _prod(x.shape[1:])
    if per_step is None or not target:
        return False
    if target[0] == -1:
        return _prod(target[1:]) == per_step
    rest = math.prod(d for d in target[1:] if d != -1)
    fits = per_step % rest == 0 if -1 in target[1:] else per_step == rest
    return x.shape[0] is not None and target[0] == x.shape[0] and fits


@kind("Reshape")
def reshape(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"target_shape"})
    target = layer.cfg.get("target_shape")
    bad = not isinstance(target, list | tuple) or any(
        isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1) for d in target
    )
    if bad or list(target).count(-1) > 1:
        raise layer.refuse("target_shape", target, "positive integers and at most one -1")
    x, target = inputs[0], tuple(target)
    size, known = _prod(x.shape), math.prod(d for d in target if d != -1)
    if size is not None and (size % known or (-1 not in target and size != known)):
        raise layer.fail(f"cannot reshape {x.shape} to {target}")
    out = tuple((size // known if size is not None else None) if d == -1 else d for d in target)
    return Reshape(
        layer,
        with_shape(x, out),
        f"reshape (B, {target})",
        {"target_shape": list(target)},
        target=target,
        keeps_time=keeps_time(x, target),
    )


class Permute(Shape):
    def mixes_steps(self) -> str | None:
        return None if self.dims[0] == 1 else "it moves axis 1, the time axis"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *self.dims)


@kind("Permute")
def permute(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"dims"})
    x, dims = inputs[0], layer.cfg.get("dims")
    if not isinstance(dims, list | tuple) or sorted(dims) != list(range(1, len(x.shape) + 1)):
        raise layer.refuse("dims", dims, f"a permutation of 1..{len(x.shape)}")
    y = with_shape(x, [x.shape[d - 1] for d in dims])
    return Permute(layer, y, f"permute (0, {tuple(dims)})", {"dims": list(dims)}, dims=tuple(dims))


class RepeatVector(Shape):
    across_time = "it repeats a vector over new time steps"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, self.n, -1)  # (B, F) -> (B, n, F)


@kind("RepeatVector")
def repeat_vector(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"n"})
    n, x = layer.option("n", kind=int), inputs[0]
    if len(x.shape) != 1:
        raise layer.fail(f"needs a (batch, features) input, got rank {x.rank}")
    return RepeatVector(layer, with_shape(x, (n, x.shape[0])), f"repeat {n} times", {"n": n}, n=n)


def pairs(layer: Layer, key: str, n: int, default) -> list[tuple[int, int]]:
    """Keras's int / (a, b) / ((a, b), (c, d)) padding or cropping as n (start, end) pairs."""
    v = layer.cfg.get(key, default)
    ok = lambda i: isinstance(i, int) and not isinstance(i, bool) and i >= 0  # noqa: E731
    if ok(v):
        return [(v, v)] * n
    if n == 1 and isinstance(v, list | tuple) and len(v) == 2 and all(map(ok, v)):
        return [tuple(v)]
    if isinstance(v, list | tuple) and len(v) == n:
        out = []
        for p in v:
            if ok(p):
                out.append((p, p))
            elif isinstance(p, list | tuple) and len(p) == 2 and all(map(ok, p)):
                out.append(tuple(p))
            else:
                break
        if len(out) == n:
            return out
    raise layer.refuse(key, v, f"an integer >= 0 or {n} (start, end) pair(s)")


class PadCrop(Shape):
    """ZeroPadding / Cropping on the spatial axes (channels_first inside)."""

    across_time = "it pads or crops the time axis"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.last:
            x = to_first(x)  # (B, ..., C) -> (B, C, ...)
        if self.pad:
            x = F.pad(x, [p for pair in reversed(self.amounts) for p in pair])
        else:
            for i, (a, b) in enumerate(self.amounts):
                x = x.narrow(2 + i, a, x.shape[2 + i] - a - b)
        return to_last(x) if self.last else x


@kind(*(f"{c}{n}D" for c in ("ZeroPadding", "Cropping") for n in (1, 2, 3)))
def pad_crop(layer: Layer, inputs: list[Spec]) -> Block:
    pad, n = layer.cls.startswith("Zero"), int(layer.cls[-2])
    key = "padding" if pad else "cropping"
    layer.check({key, "data_format"})
    fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
    amounts = pairs(layer, key, n, 0 if (n == 2 and not pad) else 1)  # Keras's defaults
    x = inputs[0]
    sizes, ch = spatial(layer, x, n, fmt)
    sign = 1 if pad else -1
    outs = [
        None if z is None else z + sign * (a + b) for z, (a, b) in zip(sizes, amounts, strict=True)
    ]
    if any(o is not None and o < 1 for o in outs):
        raise layer.refuse(key, layer.cfg.get(key), f"leaves nothing of input {sizes}")
    last = fmt == "channels_last"
    y = with_shape(x, (*outs, ch) if last else (ch, *outs))
    config = {key: [list(p) for p in amounts] if n > 1 else list(amounts[0])}
    if layer.cls != "Cropping1D":  # the only one without a data_format
        config["data_format"] = fmt
    how = f"{'zero-pad' if pad else 'crop'} {amounts} on the spatial axes"
    return PadCrop(layer, y, how, config, pad=pad, amounts=amounts, last=last)


class UpSampling(Shape):
    across_time = "it repeats time steps, so a chunk's steps are not the input's"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, s in enumerate(self.size):
            x = x.repeat_interleave(s, dim=self.axes[i])
        return x


@kind("UpSampling1D", "UpSampling2D", "UpSampling3D")
def up_sampling(layer: Layer, inputs: list[Spec]) -> Block:
    n = int(layer.cls[-2])
    layer.check({"size", "data_format", "interpolation"})
    size = layer.ints("size", n, 2)
    fmt = layer.option("data_format", "channels_last", allowed=DATA_FORMATS)
    layer.option("interpolation", "nearest", allowed=("nearest",))
    x = inputs[0]
    sizes, ch = spatial(layer, x, n, fmt)
    outs = [None if z is None else z * s for z, s in zip(sizes, size, strict=True)]
    last = fmt == "channels_last"
    axes = tuple(range(1, n + 1)) if last else tuple(range(2, n + 2))
    config = {"size": size[0] if n == 1 else list(size)}
    if n > 1:
        config["data_format"] = fmt
    if n == 2:
        config["interpolation"] = "nearest"
    y = with_shape(x, (*outs, ch) if last else (ch, *outs))
    return UpSampling(layer, y, f"repeat {size} on axes {axes}", config, size=size, axes=axes)
