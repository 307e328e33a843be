"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

Masks follow the file's Keras: Keras 3 ORs the inputs' masks (none when any input has none;
Concatenate: a missing mask counts as all-true); Keras 2 ANDs the masks it has.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .base import Block, Layer, Spec, kind, with_shape

ELEMENTWISE = {
    "Add": lambda xs: functools.reduce(torch.add, xs),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Multiply": lambda xs: functools.reduce(torch.mul, xs),
    "Average": lambda xs: functools.reduce(torch.add, xs) / len(xs),
    "Maximum": lambda xs: functools.reduce(torch.maximum, xs),
    "Minimum": lambda xs: functools.reduce(torch.minimum, xs),
}


def _broadcast(layer: Layer, inputs: list[Spec]) -> Spec:
    if len(inputs) < 2 or (layer.cls == "Subtract" and len(inputs) != 2):
        raise layer.fail(
            f"takes {'exactly 2' if layer.cls == 'Subtract' else 'at least 2'} inputs, got {len(inputs)}"
        )
    shapes = [s.shape for s in inputs]
    if len({len(s) for s in shapes}) != 1:
        raise layer.fail(f"inputs of different ranks {shapes} are not supported")
    out = []
    for dims in zip(*shapes, strict=True):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise layer.fail(f"inputs of shapes {shapes} do not broadcast")
        out.append(known.pop() if known else (1 if all(d == 1 for d in dims) else None))
    return with_shape(inputs[0], out)


class Merge(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, inputs: list[Spec], y: Spec):
        super().__init__(layer, [y])
        self.op, self.keras = ELEMENTWISE[layer.cls], layer.keras

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.op(list(xs))

    def compute_mask(self, xs, masks):
        if self.keras == 2:
            have = [m for m in masks if m is not None]
            return functools.reduce(torch.logical_and, have) if have else None
        if not masks or any(m is None for m in masks):
            return None
        return functools.reduce(torch.logical_or, masks)

    def describe(self) -> list[str]:
        return [
            f"  -> {self.keras_class.lower()} of {len(self.output_specs)} input(s), elementwise"
        ]


@kind(*ELEMENTWISE)
def elementwise(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(set())
    return Merge(layer, inputs, _broadcast(layer, inputs))


class Concatenate(Block):
    def __init__(self, layer: Layer, inputs: list[Spec], axis: int, y: Spec):
        super().__init__(layer, [y])
        self.axis, self.keras = axis, layer.keras  # axis counted with the batch axis
        self.config = {"axis": axis}

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis)

    def mixes_steps(self) -> str | None:
        return (
            "it concatenates along axis 1, the time axis"
            if self.axis % (len(self.output_specs[0].shape) + 1) == 1
            else None
        )

    def compute_mask(self, xs, masks):
        if all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(xs, masks, strict=True):
            if m is None:
                m = torch.ones_like(x, dtype=torch.bool)
            while m.ndim < x.ndim:
                m = m.unsqueeze(-1)
            full.append(m.expand_as(x))
        cat = torch.cat(full, dim=self.axis)
        return cat.all(dim=-1) if self.keras == 2 else cat.any(dim=-1)

    def describe(self) -> list[str]:
        return [f"  -> torch.cat on axis {self.axis}"]


@kind("Concatenate")
def concatenate(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axis"})
    axis = layer.cfg.get("axis", -1)
    rank = inputs[0].rank
    if (
        isinstance(axis, bool)
        or not isinstance(axis, int)
        or not (-rank <= axis < rank)
        or axis in (0, -rank)
    ):
        raise layer.refuse(
            "axis", axis, f"an axis of the inputs other than the batch axis (rank {rank})"
        )
    if len(inputs) < 2 or len({s.rank for s in inputs}) != 1:
        raise layer.fail(f"takes at least 2 inputs of one rank, got {[s.shape for s in inputs]}")
    a = axis % rank - 1  # without the batch axis
    out = list(inputs[0].shape)
    for s in inputs[1:]:
        for i, (d, e) in enumerate(zip(out, s.shape, strict=True)):
            if i != a and d is not None and e is not None and d != e:
                raise layer.fail(
                    f"inputs of shapes {[t.shape for t in inputs]} do not concatenate on axis {axis}"
                )
    sizes = [s.shape[a] for s in inputs]
    out[a] = None if None in sizes else sum(sizes)
    return Concatenate(layer, inputs, axis, with_shape(inputs[0], out))


class Dot(Block):
    """Keras's batch_dot of two inputs over ``axes`` (after L2 normalisation with normalize)."""

    def mixes_steps(self) -> str | None:
        return "its batch dot pairs or sums time steps"

    def __init__(self, layer: Layer, axes: tuple[int, int], normalize: bool, y: Spec):
        super().__init__(layer, [y])
        self.axes, self.normalize = axes, normalize
        self.config = {"axes": list(axes), "normalize": normalize}

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ax, bx = self.axes
        if self.normalize:
            a, b = F.normalize(a, dim=ax, eps=1e-12), F.normalize(b, dim=bx, eps=1e-12)
        if a.ndim == 2:  # (B, n) . (B, n) -> (B, 1)
            return (a * b).sum(dim=-1, keepdim=True)
        a = a if ax == 2 else a.transpose(1, 2)  # (B, m, n)
        b = b if bx == 1 else b.transpose(1, 2)  # (B, n, k)
        return a @ b  # (B, m, k)

    def compute_mask(self, xs, masks):
        return None

    def describe(self) -> list[str]:
        return [
            f"  -> batch dot over axes {self.axes}"
            + (" of L2-normalised inputs" if self.normalize else "")
        ]


@kind("Dot")
def dot(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"axes", "normalize"})
    if len(inputs) != 2 or inputs[0].rank != inputs[1].rank or inputs[0].rank not in (2, 3):
        raise layer.fail(f"takes two inputs of rank 2 or 3, got {[s.shape for s in inputs]}")
    rank = inputs[0].rank
    axes = layer.cfg.get("axes", -1)
    axes = [axes, axes] if isinstance(axes, int) and not isinstance(axes, bool) else axes
    if (
        not isinstance(axes, list | tuple)
        or len(axes) != 2
        or any(isinstance(a, bool) or not isinstance(a, int) for a in axes)
    ):
        raise layer.refuse("axes", layer.cfg.get("axes"), "an int or two ints")
    axes = tuple(a % rank for a in axes)
    if 0 in axes:
        raise layer.refuse("axes", layer.cfg.get("axes"), "axes other than the batch axis")
    normalize = layer.option("normalize", False, kind=bool)
    a, b = inputs[0].shape, inputs[1].shape
    if (
        a[axes[0] - 1] is not None
        and b[axes[1] - 1] is not None
        and a[axes[0] - 1] != b[axes[1] - 1]
    ):
        raise layer.fail(f"axes {axes} have sizes {a[axes[0] - 1]} and {b[axes[1] - 1]}")
    y = Spec((1,)) if rank == 2 else Spec((a[2 - axes[0]], b[2 - axes[1]]))
    return Dot(layer, axes, normalize, y)
