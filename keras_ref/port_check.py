"""``python -m keras_ref.port_check MODEL [--arch F] --inputs X.npz --out Y.npz``

Keras's side of ``torch_rnnsin port --check``: loads MODEL with Keras itself (Keras 3, or
tf_keras for a Keras 2 ``.h5``), predicts the inputs ``x`` of X.npz and writes every
layer's output to Y.npz (``out_<layer>_<part>``, with the layer names in ``names``). Bad
input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def keras_major(path: str) -> str:
    """ "2" for a Keras 2 / tf.keras .h5 or config .json, else "3"."""
    name = path.lower()
    if name.endswith(".json"):
        with open(path) as f:
            version = str(json.load(f).get("keras_version", "3"))
    elif name.endswith(".h5") and not name.endswith(".weights.h5"):
        import h5py

        with h5py.File(path, "r") as h5:
            v = h5.attrs.get("keras_version", b"3")
            version = v.decode() if isinstance(v, bytes) else str(v)
    else:
        return "3"
    return "2" if version.startswith("2") else "3"


def load(path: str, arch: str | None):
    if path.lower().endswith(".weights.h5"):
        if arch is None:
            raise ValueError(f"{path}: a weights-only file needs --arch")
        model = load(arch, None)
        model.load_weights(path)
        return model
    if keras_major(path) == "2":
        import tf_keras as K
    else:
        import keras as K
    if path.lower().endswith(".json"):
        with open(path) as f:
            return K.models.model_from_json(f.read())
    return K.models.load_model(path, compile=False)


def layer_outputs(model, x: np.ndarray) -> tuple[list[str], list[list[np.ndarray]]]:
    """Every layer's output (InputLayer left out), in order, from one Keras call."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    K = sys.modules[type(model).__module__.split(".")[0]]
    outputs, counts = [], []
    for layer in layers:  # a Bidirectional with merge_mode=None has two outputs
        out = layer.output
        out = list(out) if isinstance(out, list | tuple) else [out]
        outputs += out
        counts.append(len(out))
    flat = K.Model(model.inputs, outputs).predict(x, verbose=0)
    flat = list(flat) if isinstance(flat, list | tuple) else [flat]
    parts, i = [], 0
    for n in counts:
        parts.append([np.asarray(a) for a in flat[i : i + n]])
        i += n
    return [f"{type(layer).__name__} {layer.name!r}" for layer in layers], parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_ref.port_check", description=__doc__)
    p.add_argument("model")
    p.add_argument("--arch", default=None)
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        with np.load(args.inputs, allow_pickle=False) as z:
            x = z["x"]
        model = load(args.model, args.arch)
        names, parts = layer_outputs(model, x)
    except Exception as e:  # Keras's own errors: reported on one line
        msg = str(e).strip().splitlines()
        print(
            f"Keras could not run {args.model}: {msg[0] if msg else type(e).__name__}",
            file=sys.stderr,
        )
        return 2
    arrays = {f"out_{i}_{j}": np.asarray(a) for i, ps in enumerate(parts) for j, a in enumerate(ps)}
    np.savez(args.out, names=np.array(names), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main())
