"""The built graph as a Keras 3 Functional config (.keras / .weights.h5 through
``formats.write_keras``) or as a Keras 2 legacy .h5 (model_config + model_weights)."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from ...common.atomic import atomic_path
from .. import io
from .kgraph import KT, Graph, kts

KERAS2_VERSION = "2.15.0"  # written into the file: the format, not an installed tf_keras


def _input_config(g: Graph, layer) -> dict:
    shape = [None] + [
        None if (ax in layer.dynamic and not g.static_time) else s
        for ax, s in enumerate(layer.shape[1:], 1)
    ]
    return {"batch_shape": shape, "dtype": layer.dtype, "sparse": False, "ragged": False}


def _ser3(v):
    if isinstance(v, KT):
        return v.keras3()
    if isinstance(v, (list, tuple)):
        return [_ser3(w) for w in v]
    if isinstance(v, dict):
        return {k: _ser3(w) for k, w in v.items()}
    return v


def keras3_config(g: Graph, outputs: list[KT], name: str) -> dict:
    layers = []
    for layer in g.layers:
        inp = layer.cls == "InputLayer"
        cfg = {"name": layer.name, **(_input_config(g, layer) if inp else layer.config)}
        nodes = [] if inp else [{"args": _ser3(layer.args), "kwargs": _ser3(layer.kwargs)}]
        layers.append(
            {
                "module": "keras.layers",
                "class_name": layer.cls,
                "config": cfg,
                "registered_name": None,
                "name": layer.name,
                "inbound_nodes": nodes,
            }
        )
    ins = [[x.name, 0, 0] for x in g.inputs]
    outs = [x.keras_ref() for x in outputs]
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": layers,
            "input_layers": ins if len(ins) > 1 else ins[0],
            "output_layers": outs if len(outs) > 1 else outs[0],
        },
        "registered_name": "Functional",
    }


def _group(weight_name: str) -> str:
    """A Keras 2 weight name's Keras 3 group: "forward_x/lstm_cell/kernel" -> "forward_layer/cell"."""
    parts = weight_name.split("/")
    cell = "cell" if any(p.endswith("_cell") for p in parts) else ""
    for half in ("forward", "backward"):
        if parts[0].startswith(f"{half}_"):
            return f"{half}_layer/{cell}".rstrip("/")
    return cell


def keras3_weights(g: Graph) -> dict[str, dict[str, list[np.ndarray]]]:
    """Layer name -> {Keras 3 group path: arrays in get_weights() order} (io's contract)."""
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for x in g.layers:
        for name, a in x.weights:
            out.setdefault(x.name, {}).setdefault(_group(name), []).append(a)
    return out


def _k2_layer_config(cls: str, cfg: dict) -> dict:
    cfg = dict(cfg)
    if cls == "LeakyReLU":
        cfg["alpha"] = cfg.pop("negative_slope")
    if cls == "InputLayer":
        cfg["batch_input_shape"] = cfg.pop("batch_shape")
    for key in ("layer", "backward_layer"):
        if key in cfg:  # Keras 2 names the inner layers forward_ / backward_ + this name
            inner = dict(cfg[key]["config"])
            inner["name"] = inner["name"].split("_", 1)[1]
            cfg[key] = {"class_name": cfg[key]["class_name"], "config": inner}
    return cfg


def keras2_config(g: Graph, outputs: list[KT], name: str) -> dict:
    layers = []
    for layer in g.layers:
        inp = layer.cls == "InputLayer"
        cfg = {"name": layer.name, **(_input_config(g, layer) if inp else layer.config)}
        refs = [[*x.keras_ref(), {}] for x in kts(layer.args, layer.kwargs)]
        layers.append(
            {
                "class_name": layer.cls,
                "config": _k2_layer_config(layer.cls, cfg),
                "name": layer.name,
                "inbound_nodes": [] if inp else [refs],
            }
        )
    return {
        "class_name": "Functional",
        "config": {
            "name": name,
            "trainable": True,
            "layers": layers,
            "input_layers": [[x.name, 0, 0] for x in g.inputs],
            "output_layers": [x.keras_ref() for x in outputs],
        },
        "keras_version": KERAS2_VERSION,
        "backend": "tensorflow",
    }


def write_keras2_h5(path: str | os.PathLike, g: Graph, config: dict) -> None:
    """The legacy whole-model .h5 that tf_keras's load_model reads."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["keras_version"] = KERAS2_VERSION
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        root = f.create_group("model_weights")
        root.attrs["keras_version"] = KERAS2_VERSION
        root.attrs["backend"] = "tensorflow"
        root.attrs["layer_names"] = np.array([x.name.encode() for x in g.layers])
        for layer in g.layers:
            grp = root.create_group(layer.name)
            names = [f"{layer.name}/{rel}:0" for rel, _ in layer.weights]
            grp.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for n, (_, a) in zip(names, layer.weights, strict=True):
                grp.create_dataset(n, data=np.asarray(a, dtype=np.float32))


def write(path: str | os.PathLike, g: Graph, outputs: list[KT], name: str, keras2: bool) -> None:
    """The one place a file is written (the weights contract may change here only)."""
    if keras2:
        write_keras2_h5(path, g, keras2_config(g, outputs, name))
    else:
        io.write_keras(path, keras3_config(g, outputs, name), keras3_weights(g))
