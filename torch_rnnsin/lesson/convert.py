"""Weights between Keras (SimpleRNN + Dense) and torch (``SinRNN``), and Keras weight files.

Keras order and shapes, hidden size H, input size F = 1:

    0  RNN kernel            (F, H)  ->  rnn.weight_ih_l0  (H, F)  transposed
    1  RNN recurrent_kernel  (H, H)  ->  rnn.weight_hh_l0  (H, H)  transposed
    2  RNN bias              (H,)    ->  rnn.bias_ih_l0    (H,)    (bias_hh_l0 = 0)
    3  Dense kernel          (H, 1)  ->  dense.weight      (1, H)  transposed
    4  Dense bias            (1,)    ->  dense.bias        (1,)

This is the general port's SimpleRNN and Dense mapping (``port.layers``) applied to the
lesson's model; back: transpose, and bias = bias_ih + bias_hh. Files are read with h5py
and zipfile only (``port.io``): no TensorFlow, no pickle, no code from the file is run.
A file holding any other model is refused, naming what differs: port it with
``load_keras_model`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ..common.atomic import atomic_path
from ..common.errors import Refused, one_line
from ..port import io as formats
from ..port import tables
from ..port.kinds.recurrent import rnn_rows
from ..port.model import build_model, load_keras_arrays
from ..port.tables import Part, Row
from .model import SinRNN

KERAS_NAMES = ("RNN kernel", "RNN recurrent_kernel", "RNN bias", "Dense kernel", "Dense bias")
RNN_ROWS = rnn_rows("SimpleRNN", use_bias=True, reset_after=True, own=False)
DENSE_ROWS = (Row("kernel", "weight", transpose=True), Row("bias", "bias"))
OTHER = "port it with load_keras_model instead"


def keras_shapes(hidden_size: int, input_size: int = 1) -> list[tuple[int, ...]]:
    H, F = hidden_size, input_size
    return [(F, H), (H, H), (H,), (H, 1), (1,)]


def check_keras_weights(
    weights: Sequence[np.ndarray], hidden_size: int | None = None
) -> list[np.ndarray]:
    """The five arrays as float32, every shape checked; hidden size read from the kernel.

    Arrays that are not real numbers, or whose values are not finite in float32 (a float64
    beyond float32's range would become inf), are refused.
    """
    if len(weights) != 5:
        raise Refused(
            f"expected 5 arrays in Keras order ({', '.join(KERAS_NAMES)}), got {len(weights)}"
        )
    arrays = [tables.as_float32(name, w) for name, w in zip(KERAS_NAMES, weights, strict=True)]
    if arrays[0].ndim != 2:
        raise Refused(
            f"{KERAS_NAMES[0]}: expected a 2-D array (input, hidden), got shape {arrays[0].shape}"
        )
    F, H = arrays[0].shape
    if F != 1 or H < 1:
        raise Refused(f"{KERAS_NAMES[0]}: expected shape (1, hidden), got {arrays[0].shape}")
    if hidden_size is not None and hidden_size != H:
        raise Refused(
            f"{KERAS_NAMES[0]}: the weights have hidden size {H}, expected hidden size "
            f"{hidden_size} (shape (1, {hidden_size}), got {arrays[0].shape})"
        )
    for name, a, shape in zip(KERAS_NAMES, arrays, keras_shapes(H, F), strict=True):
        if a.shape != shape:
            raise Refused(f"{name}: expected shape {shape}, got {a.shape}")
    return arrays


def keras_to_torch(weights: Sequence[np.ndarray], model=None):
    """A ``SinRNN`` holding the five Keras arrays (or ``model``, filled in place)."""
    arrays = check_keras_weights(weights)
    if model is None:
        model = SinRNN(hidden_size=arrays[0].shape[1])
    tables.keras_to_torch(Part("", model.rnn, RNN_ROWS), arrays[:3], "RNN")  # checks, then copies
    tables.keras_to_torch(Part("", model.dense, DENSE_ROWS), arrays[3:], "Dense")
    return model


def torch_to_keras(model) -> list[np.ndarray]:
    """The five arrays in Keras order and shapes (bias = bias_ih + bias_hh)."""
    rnn, dense = Part("", model.rnn, RNN_ROWS), Part("", model.dense, DENSE_ROWS)
    return tables.torch_to_keras(rnn) + tables.torch_to_keras(dense)


# --- files -------------------------------------------------------------------


def lesson_config(hidden_size: int = 1) -> dict:
    """The lesson's architecture as a Keras config: Input -> SimpleRNN 'RNN' -> Dense."""

    def entry(cls: str, **config) -> dict:
        return {"class_name": cls, "config": config}

    return {
        "class_name": "Sequential",
        "config": {
            "name": "lesson",
            "layers": [
                entry("InputLayer", name="input_layer", batch_shape=[None, None, 1]),
                entry("SimpleRNN", name="RNN", units=hidden_size),
                entry("Dense", name="dense", units=1),
            ],
        },
    }


LESSON = {
    "SimpleRNN": {
        "activation": "tanh",
        "use_bias": True,
        "go_backwards": False,
        "return_sequences": False,
    },
    "Dense": {"units": 1, "activation": "linear", "use_bias": True},
}


def _options(b) -> dict:
    if b.keras_class == "SimpleRNN":
        return {**b.cells[0].options, **b.flags}
    return b.config


def check_lesson_model(model) -> None:
    """Refuse a ported model that is not exactly the lesson's, naming what differs."""
    classes = [b.keras_class for b in model.layers]
    if classes != ["SimpleRNN", "Dense"] or len(model.inputs) != 1 or len(model.graph.calls) != 2:
        raise Refused(f"not a SimpleRNN + Dense model: found layers {classes}; {OTHER}")
    for b in model.layers:
        for key, want in LESSON[b.keras_class].items():
            got = _options(b).get(key)
            if got != want:
                raise Refused(
                    f"{b.keras_class} {b.keras_name!r}: {key}={got!r} — the lesson "
                    f"model has {key}={want!r}; {OTHER}"
                )
    F = model.inputs[0].shape[-1]
    if F != 1 or len(model.inputs[0].shape) != 3:
        rnn = model.layers[0]
        raise Refused(
            f"SimpleRNN {rnn.keras_name!r}: {F} input features — the lesson model has 1; {OTHER}"
        )


def _read_keras_file(path: Path) -> list[np.ndarray]:
    try:  # a .weights.h5 from save_keras_weights / keras_ref carries its config (the stamp)
        kf = formats.read_keras(path)
    except formats.NeedsArch:
        raise Refused(
            f"{path}: a weights-only file holds no architecture, so nothing shows it is the "
            "lesson's SimpleRNN + Dense (a relu, go_backwards or other model's weights would "
            "read as its): save it with save_keras_weights, or port it with "
            "load_keras_model(path, arch=...)"
        ) from None
    model = build_model(kf.config, empty=True)  # every layer and option mapped or refused
    check_lesson_model(model)
    load_keras_arrays(model, kf.weights)
    return [a for b in model.layers for p in b.parts() for a in tables.torch_to_keras(p)]


def load_keras_weights(path: str | os.PathLike) -> list[np.ndarray]:
    """The five Keras-order arrays from ``.weights.h5``, ``.keras``, a Keras 3 or Keras 2
    ``.h5`` (``model.save``), or ``.npz``.

    ``.npz`` holds ``np.savez(path, *arrays)`` (``arr_0`` .. ``arr_4``); it is
    read with ``allow_pickle=False``.
    """
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".npz", ".keras", ".h5")):
        raise Refused(f"{path}: unknown weights format; use .weights.h5, .keras, .h5 or .npz")
    if not name.endswith(".npz") and not path.exists():
        raise FileNotFoundError(f"weights file not found: {path}")
    # ValueError: the porter's refusals, until it raises Refused
    try:
        arrays = formats.read_npz(path) if name.endswith(".npz") else _read_keras_file(path)
        return check_keras_weights(arrays)
    except ValueError as e:
        msg = one_line(e)
        raise Refused(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None


def save_keras_weights(weights: Sequence[np.ndarray], path: str | os.PathLike) -> None:
    """Write ``.weights.h5`` (Keras 3 layout of the lesson's model, which
    ``model.load_weights`` accepts) or ``.npz``; atomically (temp file + rename)."""
    arrays = check_keras_weights(weights)
    path = Path(path)
    if path.name.endswith(".npz"):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, *arrays)
        return
    if not path.name.endswith(".weights.h5"):
        raise Refused(f"{path}: save as .weights.h5 or .npz")

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_group("vars").attrs["name"] = "functional"
        h5.create_group("layers/input_layer/vars").attrs["name"] = "input_layer"
        h5.create_group("layers/simple_rnn/vars").attrs["name"] = "RNN"
        cell = h5.create_group("layers/simple_rnn/cell/vars")
        cell.attrs["name"] = "simple_rnn_cell"
        for i, a in enumerate(arrays[:3]):
            cell.create_dataset(str(i), data=a)
        # A freshly compiled model's rmsprop state, so that load_weights finds what it expects.
        opt = h5.create_group("optimizer/vars")
        opt.attrs["name"] = "rm_sprop"
        opt.create_dataset("0", data=np.int64(0))
        opt.create_dataset("1", data=np.float32(0.001))
        dense = h5.create_group("layers/dense/vars")
        dense.attrs["name"] = "dense"
        for i, a in enumerate(arrays[3:]):
            dense.create_dataset(str(i), data=a)
        formats.stamp_weights_file(h5, lesson_config(arrays[0].shape[1]))
