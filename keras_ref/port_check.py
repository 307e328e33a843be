"""``python -m keras_ref.port_check [--arch F] --inputs X.npz --out Y.npz [--full-init] -- MODEL``

Keras's side of ``torch_rnnsin port --check``: loads MODEL with Keras itself (Keras 3, or
tf_keras for a Keras 2 file; with ``--arch``, MODEL holds the weights only and the API
follows the architecture's file), runs
Keras's ``predict`` (eagerly, in one batch) on the inputs of X.npz and writes Y.npz.

X.npz: the model's inputs ``x0``, ``x1``, ... in Keras's input order (float, integer or
boolean arrays; a single ``x`` is read as ``x0``).

Y.npz: ``model_<k>``, every model output in Keras's output order; ``names``, one
``"Class 'name'"`` per layer called exactly once in the model (``model.layers`` order,
InputLayer left out); ``out_<i>_<j>``, output ``j`` of layer ``i`` of ``names``.

The model is built without Keras's random initialisers (its weights are then read from
the file: the same model bit for bit, several times faster for large recurrent layers);
``--full-init`` builds it as ``load_model`` does. MODEL comes after ``--``, so that a file
name starting with ``-`` is a file (and ``--arch=-x.json`` with ``=`` for such an
architecture file). Bad input (a file Keras cannot load or run): one line
on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

import numpy as np

from .loading import keras_of, load


def read_inputs(path: str) -> list[np.ndarray]:
    """The arrays ``x0``, ``x1``, ... (or a single ``x``) of an .npz, in order."""
    with np.load(path, allow_pickle=False) as z:
        if "x" in z.files:
            return [z["x"]]
        return [z[f"x{i}"] for i in range(len(z.files))]


def _nodes(model) -> list:
    """The model's own graph nodes (a Keras 3 Sequential keeps them in ``_functional``)."""
    graph = getattr(model, "_functional", None) or model
    return [n for ns in graph._nodes_by_depth.values() for n in ns]


def _flat(outputs) -> list:
    if isinstance(outputs, list | tuple):
        return [t for o in outputs for t in _flat(o)]
    return [outputs]


def called_once(model) -> list[tuple[str, list]]:
    """("Class 'name'", its output tensors) for every layer called exactly once in the
    model, in ``model.layers`` order, InputLayer left out."""
    nodes: dict[int, list] = {}
    for n in _nodes(model):
        layer = getattr(n, "operation", None) or n.layer  # Keras 3 / tf_keras
        nodes.setdefault(id(layer), []).append(n)
    found = []
    for layer in model.layers:
        mine = nodes.get(id(layer), [])
        if type(layer).__name__ == "InputLayer" or len(mine) != 1:
            continue
        found.append((f"{type(layer).__name__} {layer.name!r}", _flat(mine[0].outputs)))
    return found


def _predict(K: ModuleType, inputs, outputs: list, xs: list[np.ndarray]) -> list[np.ndarray]:
    probe = K.Model(inputs, outputs)
    probe.compile(run_eagerly=True)  # predict's own step, without tracing a graph
    y = probe.predict_on_batch(xs if len(xs) > 1 else xs[0])  # one batch: no data pipeline
    return [np.asarray(a) for a in _flat(y)]


def predict_all(model, xs: list[np.ndarray], layers: bool = True):
    """(model outputs, layer names, each layer's outputs), from one Keras predict."""
    K = keras_of(model)
    named = called_once(model) if layers else []
    outs = _flat(model.outputs)
    flat = [t for _, ts in named for t in ts] + outs
    y = _predict(K, model.inputs, flat, xs)
    parts, i = [], 0
    for _, ts in named:
        parts.append(y[i : i + len(ts)])
        i += len(ts)
    return y[i:], [n for n, _ in named], parts


def run(model_path: str, arch: str | None, inputs: str, out: str, full_init: bool) -> None:
    xs = read_inputs(inputs)
    model = load(model_path, arch, full_init)
    ys, names, parts = predict_all(model, xs)
    arrays = {f"model_{k}": y for k, y in enumerate(ys)}
    arrays.update({f"out_{i}_{j}": a for i, ps in enumerate(parts) for j, a in enumerate(ps)})
    np.savez(out, names=np.array(names, dtype=str), **arrays)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_ref.port_check", description=__doc__.split("\n\n")[1]
    )
    p.add_argument("model")
    p.add_argument("--arch", default=None)
    p.add_argument("--inputs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--full-init", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args.model, args.arch, args.inputs, args.out, args.full_init)
    except Exception as e:  # Keras's own errors: reported on one line
        msg = str(e).strip().splitlines()
        print(
            f"Keras could not run {args.model}: {msg[0] if msg else type(e).__name__}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
