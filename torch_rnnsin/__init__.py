"""torch_rnnsin: the Keras sine-wave RNN lesson, exactly, in PyTorch + Lightning.

Public names are imported on first use, so that ``import torch_rnnsin.data``
and the CLI's ``--help`` do not pay for torch and Lightning.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "sine_wave": "data",
    "split_series": "data",
    "make_windows": "data",
    "make_stream_chunks": "data",
    "SinRNN": "model",
    "predict_stateless": "predict",
    "predict_stateful": "predict",
    "predict_stateless_numpy": "numpy_ref",
    "predict_stateful_numpy": "numpy_ref",
    "KerasRMSprop": "optim",
    "keras_to_torch": "convert",
    "torch_to_keras": "convert",
    "load_keras_weights": "convert",
    "save_keras_weights": "convert",
    "load_keras_model": "port.model",
    "save_keras_model": "port.model",
    "TrainConfig": "config",
    "SinRNNModule": "lit_module",
    "SineDataModule": "datamodule",
    "export_onnx": "export",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
