"""The weight tables, shared with the Keras -> torch direction: the same ``Row``s and
``rnn_rows`` the layer kinds use, read the other way."""

from __future__ import annotations

from ..kinds.recurrent import rnn_rows
from ..tables import Part, Row
from ..tables import torch_to_keras as _part_to_keras


def rnn_table(kind: str, use_bias: bool, reset_after: bool = True) -> list[Row]:
    """torch's fused nn.RNN / nn.LSTM / nn.GRU (GRU: Keras reset_after=True)."""
    return list(rnn_rows(kind, use_bias, reset_after, own=False))


def dense_table(use_bias: bool) -> list[Row]:
    rows = [Row("kernel", "weight", transpose=True)]
    return [*rows, Row("bias", "bias")] if use_bias else rows


def torch_to_keras(module, rows) -> list:
    """``module``'s tensors as Keras arrays, in get_weights() order."""
    return _part_to_keras(Part("", module, tuple(rows)))


__all__ = ["Row", "dense_table", "rnn_table", "torch_to_keras"]
