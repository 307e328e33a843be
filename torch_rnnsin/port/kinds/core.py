"""Layers that are the identity at inference (Dropout family, GaussianNoise, ...), ``Masking``
and ``Embedding`` (token ids -> vectors; ``mask_zero`` makes id 0 a masked step).

    Embedding  embeddings (V, D) -> embedding.weight (V, D)  as is
"""

from __future__ import annotations

import torch
from torch import nn

from ..tables import Part, Row
from .base import Block, Layer, Spec, kind, with_shape

# Identity at inference: the options each may carry, and (first) those written back (Keras 3's).
IDENTITY = {
    "Dropout": ({"rate", "noise_shape", "seed"}, set()),
    "SpatialDropout1D": ({"rate", "seed"}, {"noise_shape"}),  # Keras 2 writes noise_shape
    "SpatialDropout2D": ({"rate", "seed", "data_format"}, {"noise_shape"}),
    "SpatialDropout3D": ({"rate", "seed", "data_format"}, {"noise_shape"}),
    "GaussianNoise": ({"stddev", "seed"}, set()),
    "GaussianDropout": ({"rate", "seed"}, {"noise_shape"}),
    "AlphaDropout": ({"rate", "noise_shape", "seed"}, set()),
    "ActivityRegularization": ({"l1", "l2"}, set()),
}


class Identity(Block):
    per_step = "elementwise"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def describe(self) -> list[str]:
        return ["  -> identity at inference (no parameters)"]


@kind(*IDENTITY)
def identity(layer: Layer, inputs: list[Spec]) -> Block:
    written, dropped = IDENTITY[layer.cls]
    layer.check(written | dropped)
    b = Identity(layer, inputs[:1])
    b.config = {k: v for k, v in layer.cfg.items() if k in written}
    return b


class Masking(Block):
    """Steps whose features all equal mask_value are masked, and set to 0 (as Keras does)."""

    per_step = "features"

    def __init__(self, layer: Layer, x: Spec, value: float):
        super().__init__(layer, [x])
        self.mask_value = float(value)
        self.config = {"mask_value": value}

    def step_mask(self, x: torch.Tensor) -> torch.Tensor:
        return (x != self.mask_value).any(dim=-1)  # (B, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.step_mask(x).unsqueeze(-1).to(x.dtype)

    def compute_mask(self, xs, masks):
        return self.step_mask(xs[0])

    def describe(self) -> list[str]:
        return [f"  -> mask = any(x != {self.mask_value}, features); masked steps set to 0"]


@kind("Masking")
def masking(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"mask_value"})
    value = layer.option("mask_value", 0.0, kind=float)
    x = inputs[0]
    if len(x.shape) < 2:
        raise layer.fail(f"needs a (batch, time, features) input, got rank {x.rank}")
    return Masking(layer, x, value)


class Embedding(Block):
    per_step = "elementwise"

    def __init__(self, layer: Layer, ids: Spec, vocab: int, dim: int, mask_zero: bool):
        super().__init__(layer, [Spec((*ids.shape, dim))])
        self.embedding = nn.Embedding(vocab, dim)
        self.mask_zero = mask_zero
        self.config = {"input_dim": vocab, "output_dim": dim, "mask_zero": mask_zero}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.is_floating_point():  # token ids declared float32 in front of an Embedding
            ids = ids.long()
        return self.embedding(ids)  # (B, T) -> (B, T, D)

    def compute_mask(self, xs, masks):
        return (xs[0] != 0) if self.mask_zero else None

    def parts(self) -> list[Part]:
        return [Part("", self.embedding, (Row("embeddings", "weight"),))]

    def describe(self) -> list[str]:
        e = self.embedding
        zero = "; id 0 masks its step" if self.mask_zero else ""
        return [f"  -> embedding = nn.Embedding({e.num_embeddings}, {e.embedding_dim}){zero}"]


@kind("Embedding")
def embedding(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"input_dim", "output_dim", "mask_zero"})
    vocab = layer.option("input_dim", kind=int)
    dim = layer.option("output_dim", kind=int)
    mask_zero = layer.option("mask_zero", False, kind=bool)
    ids = inputs[0]
    if ids.dtype == "bool":
        raise layer.fail("takes integer token ids, got a bool input")
    return Embedding(layer, with_shape(ids, ids.shape), vocab, dim, mask_zero)
