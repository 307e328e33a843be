"""The Keras 3 (TensorFlow backend) reference: the lesson's model, its training and
both prediction modes; and Keras's side of ``port --check`` (``keras_ref.port_check``).
The only package of the project that imports Keras.

The lesson's functions are imported on first use, so that ``keras_ref.loading`` and
``keras_ref.port_check`` can be imported (for their helpers) without TensorFlow.
"""

from __future__ import annotations

import importlib

__all__ = ["define_model", "predict_stateful", "predict_stateless", "train", "train_stateful"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module(".model", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
