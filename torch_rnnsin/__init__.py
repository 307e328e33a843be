"""torch_rnnsin: an exact Keras <-> PyTorch porter for recurrent models (SimpleRNN, LSTM,
GRU, Bidirectional; Keras 3 and Keras 2 files), with ONNX export that keeps the state,
and the sine-wave lesson that started it.

    port/      Keras files <-> torch models (no Keras, Lightning, pandas or matplotlib)
    export/    ONNX with the state as graph inputs and outputs
    lesson/    the 5-weight sine RNN, trained with Lightning; prediction modes; the study
    common/    errors (``Refused``), atomic writes, run folders
    commands/  the command line (``python -m torch_rnnsin``, ``train.py``)

Public names are imported on first use, so that ``import torch_rnnsin.port`` pays for
neither the lesson nor ONNX, and the CLI's ``--help`` for nothing heavy.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "load_keras_model": "port.model",
    "save_keras_model": "port.model",
    "export_onnx": "export.onnx",
    "Refused": "common.errors",
    "sine_wave": "lesson.data",
    "split_series": "lesson.data",
    "make_windows": "lesson.data",
    "make_stream_chunks": "lesson.data",
    "SinRNN": "lesson.model",
    "predict_stateless": "lesson.predict",
    "predict_stateful": "lesson.predict",
    "predict_stateless_numpy": "lesson.numpy_ref",
    "predict_stateful_numpy": "lesson.numpy_ref",
    "KerasRMSprop": "lesson.optim",
    "keras_to_torch": "lesson.convert",
    "torch_to_keras": "lesson.convert",
    "load_keras_weights": "lesson.convert",
    "save_keras_weights": "lesson.convert",
    "TrainConfig": "lesson.config",
    "SinRNNModule": "lesson.lightning.lit_module",
    "SineDataModule": "lesson.lightning.datamodule",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
