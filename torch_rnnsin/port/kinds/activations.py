"""Keras activation functions by name, in torch, and the ``Activation`` layer.

Formulas follow the file's Keras version where Keras changed them:
    hard_sigmoid  Keras 3: relu6(x + 3) / 6        Keras 2: clip(0.2 x + 0.5, 0, 1)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .base import Block, Layer, Spec, kind

Fn = Callable[[torch.Tensor], torch.Tensor]


def _hard_sigmoid3(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


def _hard_sigmoid2(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def _glu(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return a * torch.sigmoid(b)


def _sparse_plus(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, x, (x + 1) ** 2 / 4))


def _sparse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(0.5 * (x + 1.0), 0.0, 1.0)  # 0 below -1, 1 above 1


KERAS3: dict[str, Fn] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softmax": lambda x: F.softmax(x, dim=-1),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "swish": F.silu,
    "silu": F.silu,
    "gelu": F.gelu,  # exact (erf): Keras's default approximate=False
    "exponential": torch.exp,
    "hard_sigmoid": _hard_sigmoid3,
    "hard_silu": lambda x: x * _hard_sigmoid3(x),
    "hard_swish": lambda x: x * _hard_sigmoid3(x),
    "hard_tanh": lambda x: torch.clamp(x, -1.0, 1.0),
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "mish": lambda x: x * torch.tanh(F.softplus(x)),
    "log_sigmoid": F.logsigmoid,
    "tanh_shrink": lambda x: x - torch.tanh(x),
    "soft_shrink": lambda x: F.softshrink(x, 0.5),
    "hard_shrink": lambda x: F.hardshrink(x, 0.5),
    "squareplus": lambda x: (x + torch.sqrt(x * x + 4.0)) / 2,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": _sparse_sigmoid,
    "glu": _glu,
}
KERAS2: dict[str, Fn] = {
    **{k: KERAS3[k] for k in ("linear", "relu", "tanh", "sigmoid", "softmax", "elu", "selu")},
    **{k: KERAS3[k] for k in ("softplus", "softsign", "swish", "gelu", "exponential")},
    "hard_sigmoid": _hard_sigmoid2,
    "relu6": F.relu6,
    "silu": F.silu,
    "mish": KERAS3["mish"],
}


ACROSS_FEATURES = {"softmax", "log_softmax", "glu"}  # over the last axis; the rest elementwise


def activation(layer: Layer, key: str = "activation", default: str | None = "linear") -> str:
    """The activation option's name, refused unless we compute it for the file's Keras."""
    value = layer.cfg.get(key, default)
    if value is None:
        value = "linear"
    table = KERAS2 if layer.keras == 2 else KERAS3
    if not isinstance(value, str) or value not in table:
        raise layer.refuse(
            key, value, f"Keras {layer.keras} activations ported: {', '.join(sorted(table))}"
        )
    return value


def function(name: str, keras: int) -> Fn:
    return (KERAS2 if keras == 2 else KERAS3)[name]


class ActivationBlock(Block):
    def __init__(self, layer: Layer, inputs: list[Spec]):
        super().__init__(layer, inputs[:1])
        self.activation = activation(layer, default=None)
        self.fn = function(self.activation, layer.keras)
        self.config = {"activation": self.activation}

    def mixes_steps(self) -> str | None:
        if self.activation in ACROSS_FEATURES:
            return (
                None
                if self.output_specs[0].rank >= 3
                else f"{self.activation} acts across axis 1, the time axis"
            )
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def describe(self) -> list[str]:
        return [f"  -> {self.activation} (no parameters)"]


@kind("Activation")
def build_activation(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"activation"})
    return ActivationBlock(layer, inputs)
