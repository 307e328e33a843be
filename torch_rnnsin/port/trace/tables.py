"""The weight tables, shared with the Keras -> torch direction (one import to move)."""

from __future__ import annotations

from ..layers import Row, dense_table, rnn_table, torch_to_keras

__all__ = ["Row", "dense_table", "rnn_table", "torch_to_keras"]
