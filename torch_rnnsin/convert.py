"""Weights between Keras (SimpleRNN + Dense) and torch (``SinRNN``), and Keras weight files.

Keras order and shapes, hidden size H, input size F = 1:

    0  RNN kernel            (F, H)  ->  rnn.weight_ih_l0  (H, F)  transposed
    1  RNN recurrent_kernel  (H, H)  ->  rnn.weight_hh_l0  (H, H)  transposed
    2  RNN bias              (H,)    ->  rnn.bias_ih_l0    (H,)    (bias_hh_l0 = 0)
    3  Dense kernel          (H, 1)  ->  dense.weight      (1, H)  transposed
    4  Dense bias            (1,)    ->  dense.bias        (1,)

Back: transpose, and bias = bias_ih + bias_hh. Files are read with h5py and
zipfile only: no TensorFlow, no pickle, no code from the file is run.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

KERAS_NAMES = ("RNN kernel", "RNN recurrent_kernel", "RNN bias", "Dense kernel", "Dense bias")
# (torch attribute, transposed?) for each Keras array, in Keras order.
TORCH_TARGETS = (
    ("rnn.weight_ih_l0", True),
    ("rnn.weight_hh_l0", True),
    ("rnn.bias_ih_l0", False),
    ("dense.weight", True),
    ("dense.bias", False),
)


def keras_shapes(hidden_size: int, input_size: int = 1) -> list[tuple[int, ...]]:
    H, F = hidden_size, input_size
    return [(F, H), (H, H), (H,), (H, 1), (1,)]


def check_keras_weights(
    weights: Sequence[np.ndarray], hidden_size: int | None = None
) -> list[np.ndarray]:
    """The five arrays as float32, every shape checked; hidden size read from the kernel."""
    if len(weights) != 5:
        raise ValueError(
            f"expected 5 arrays in Keras order ({', '.join(KERAS_NAMES)}), got {len(weights)}"
        )
    arrays = [np.asarray(w) for w in weights]
    if arrays[0].ndim != 2:
        raise ValueError(
            f"{KERAS_NAMES[0]}: expected a 2-D array (input, hidden), got shape {arrays[0].shape}"
        )
    F, H = arrays[0].shape
    if F != 1 or H < 1:
        raise ValueError(f"{KERAS_NAMES[0]}: expected shape (1, hidden), got {arrays[0].shape}")
    if hidden_size is not None and H != hidden_size:
        raise ValueError(
            f"{KERAS_NAMES[0]}: the weights have hidden size {H}, expected hidden size "
            f"{hidden_size} (shape (1, {hidden_size}), got {arrays[0].shape})"
        )
    for name, a, shape in zip(KERAS_NAMES, arrays, keras_shapes(H, F), strict=True):
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: values must be finite numbers, got {a.ravel()[:5]}")
    return [a.astype(np.float32) for a in arrays]


def keras_to_torch(weights: Sequence[np.ndarray], model=None):
    """A ``SinRNN`` holding the five Keras arrays (or ``model``, filled in place)."""
    import torch

    from .model import SinRNN

    arrays = check_keras_weights(weights)
    H = arrays[0].shape[1]
    if model is None:
        model = SinRNN(hidden_size=H)
    state = model.state_dict()
    for (key, transposed), name, a in zip(TORCH_TARGETS, KERAS_NAMES, arrays, strict=True):
        a = a.T if transposed else a
        if tuple(state[key].shape) != a.shape:
            raise ValueError(
                f"{name} -> {key}: the model expects shape {tuple(state[key].shape)}, "
                f"the weights give {a.shape}"
            )
    with torch.no_grad():
        for (key, transposed), a in zip(TORCH_TARGETS, arrays, strict=True):
            t = state[key]
            t.copy_(torch.from_numpy(np.ascontiguousarray(a.T if transposed else a)))
        model.rnn.bias_hh_l0.zero_()
    return model


def torch_to_keras(model) -> list[np.ndarray]:
    """The five arrays in Keras order and shapes (bias = bias_ih + bias_hh)."""
    sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return [
        sd["rnn.weight_ih_l0"].T.copy(),
        sd["rnn.weight_hh_l0"].T.copy(),
        sd["rnn.bias_ih_l0"] + sd["rnn.bias_hh_l0"],
        sd["dense.weight"].T.copy(),
        sd["dense.bias"].copy(),
    ]


# --- files -------------------------------------------------------------------


def _var_groups(h5) -> dict[str, list[np.ndarray]]:
    """Every ``.../vars`` group under ``layers/`` that holds arrays: path -> arrays in order."""
    import h5py

    found: dict[str, list[np.ndarray]] = {}
    if "layers" not in h5:
        raise ValueError(
            f"no 'layers' group (found {sorted(h5.keys())}); not a Keras 3 weights file"
        )

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and name.endswith("vars") and len(obj):
            keys = sorted(obj.keys(), key=lambda k: int(k) if k.isdigit() else k)
            found[name] = [np.asarray(obj[k]) for k in keys]

    h5["layers"].visititems(visit)
    return found


def _read_weights_h5(f) -> list[np.ndarray]:
    import h5py

    try:
        h5 = h5py.File(f, "r")
    except OSError as e:
        raise ValueError(f"not a readable HDF5 weights file ({e})") from None
    with h5:
        groups = _var_groups(h5)
    rnn = [p for p in groups if p.startswith("simple_rnn") and len(groups[p]) == 3]
    dense = [p for p in groups if p.startswith("dense") and len(groups[p]) == 2]
    if len(rnn) != 1 or len(dense) != 1 or len(groups) != 2:
        found = ", ".join(f"{p} ({len(a)} arrays)" for p, a in groups.items()) or "no weights"
        raise ValueError(f"not a SimpleRNN + Dense model: found {found}")
    return groups[rnn[0]] + groups[dense[0]]


def _check_keras_config(config: dict) -> None:
    layers = config.get("config", {}).get("layers", [])
    classes = [layer.get("class_name") for layer in layers]
    if [c for c in classes if c != "InputLayer"] != ["SimpleRNN", "Dense"]:
        raise ValueError(f"not a SimpleRNN + Dense model: found layers {classes}")


def load_keras_weights(path: str | os.PathLike) -> list[np.ndarray]:
    """The five Keras-order arrays from ``.weights.h5``, ``.keras`` or ``.npz``.

    ``.npz`` holds ``np.savez(path, *arrays)`` (``arr_0`` .. ``arr_4``); it is
    read with ``allow_pickle=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    name = path.name.lower()
    if name.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = sorted(z.files, key=lambda k: int(k[4:]) if k[4:].isdigit() else 1 << 30)
                arrays = [z[k] for k in keys]
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    elif name.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as z:
                if "config.json" in z.namelist():
                    _check_keras_config(json.loads(z.read("config.json")))
                if "model.weights.h5" not in z.namelist():
                    raise ValueError(f"no model.weights.h5 inside (found {z.namelist()})")
                arrays = _read_weights_h5(io.BytesIO(z.read("model.weights.h5")))
        except zipfile.BadZipFile as e:
            raise ValueError(f"{path}: not a .keras zip archive ({e})") from None
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    elif name.endswith(".h5"):
        try:
            arrays = _read_weights_h5(path)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    else:
        raise ValueError(f"{path}: unknown weights format; use .weights.h5, .keras or .npz")
    try:
        return check_keras_weights(arrays)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def save_keras_weights(weights: Sequence[np.ndarray], path: str | os.PathLike) -> None:
    """Write ``.weights.h5`` (Keras 3 layout of the lesson's model, which
    ``model.load_weights`` accepts) or ``.npz``; atomically (temp file + rename)."""
    from .atomic import atomic_path

    arrays = check_keras_weights(weights)
    path = Path(path)
    if path.name.endswith(".npz"):
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, *arrays)
        return
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"{path}: save as .weights.h5 or .npz")
    import h5py

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
