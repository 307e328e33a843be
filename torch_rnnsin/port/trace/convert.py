"""save_torch_as_keras: a user's torch module, traced on example inputs, as a Keras file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.fx.node import map_arg

from ...common.errors import Refused
from . import modules, ops, read, write
from .kgraph import KT, Graph, Stack

DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.int32: "int32"}


@dataclass(frozen=True)
class Slot:
    """One Keras input or output: which torch tensor it is, and how it is laid out."""

    name: str  # the Keras layer it is (input) or comes from (output)
    path: tuple[int, ...]  # index into the torch arguments / the (nested) torch outputs
    stack: int | None  # a state stack's layer (torch axis 0), or None
    perm: tuple[int, ...]  # torch axis i is Keras axis perm[i]

    def keras(self, value) -> np.ndarray:
        for i in self.path:
            value = value[i]
        value = value.detach().cpu() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if self.stack is not None:
            value = value[self.stack]
        return value.permute(*np.argsort(self.perm).tolist()).numpy()


@dataclass(frozen=True)
class KerasSignature:
    """How the Keras model's inputs and outputs relate to the torch module's."""

    inputs: tuple[Slot, ...]
    outputs: tuple[Slot, ...]

    def keras_inputs(self, *args) -> list[np.ndarray]:
        """torch arguments -> the Keras model's inputs, in its order."""
        return [s.keras(args) for s in self.inputs]

    def keras_outputs(self, out) -> list[np.ndarray]:
        """the torch module's output -> what Keras's predict gives, in its order."""
        return [s.keras(out) for s in self.outputs]


def _rnn_uses(gm: torch.fx.GraphModule) -> tuple[set, set]:
    """Placeholders given to a recurrent module as its state, and as a time-major input."""
    states, time_major = set(), set()
    for n in gm.graph.nodes:
        if n.op != "call_module" or not isinstance(gm.get_submodule(n.target), nn.RNNBase):
            continue
        if not gm.get_submodule(n.target).batch_first and n.args[0].op == "placeholder":
            time_major.add(n.args[0])
        if len(n.args) > 1:
            map_arg(n.args[1], lambda a: states.add(a) if a.op == "placeholder" else None)
    return states, time_major


def _dtype(g: Graph, t: torch.Tensor, what: str) -> str:
    if t.dtype not in DTYPES:
        raise g.refuse(f"{what}: dtype {t.dtype} is not supported (float32, or int for Embedding)")
    return DTYPES[t.dtype]


def _input(g: Graph, n, t, i: int, states: set, time_major: set):
    """One torch argument -> its Keras Input(s) and their slots."""
    if not isinstance(t, torch.Tensor) or t.dim() < 2:
        raise g.refuse(f"argument {n.name!r}: expected a batched tensor, got {type(t).__name__}")
    dtype = _dtype(g, t, f"argument {n.name!r}")
    shape = tuple(t.shape)
    if n in states:  # (L*D, B, H): one Keras Input (B, H) per layer and direction
        if t.dim() != 3:
            raise g.refuse(f"argument {n.name!r}: a recurrent state must be (L*D, B, H)")
        k = shape[0]
        layers = [
            g.input(n.name if k == 1 else f"{n.name}_{j}", shape[1:], dtype) for j in range(k)
        ]
        slots = [Slot(x.name, (i,), j, (0, 1)) for j, x in enumerate(layers)]
        return Stack(tuple(KT(x, 0, shape[1:], (0, 1), dtype) for x in layers)), slots
    perm = (1, 0, 2) if n in time_major and t.dim() == 3 else tuple(range(t.dim()))
    kshape = modules.kshape_of(t, perm)
    layer = g.input(n.name, kshape, dtype)
    return KT(layer, 0, kshape, perm, dtype), [Slot(layer.name, (i,), None, perm)]


def _outputs(g: Graph, value, path=()) -> tuple[list[KT], list[Slot]]:
    if isinstance(value, KT):
        return [value], [Slot(value.layer.name, path, None, value.perm)]
    if isinstance(value, Stack):
        return list(value.items), [
            Slot(x.layer.name, path, k, x.perm) for k, x in enumerate(value.items)
        ]
    if isinstance(value, (tuple, list)):
        kts, slots = [], []
        for i, v in enumerate(value):
            a, b = _outputs(g, v, (*path, i))
            kts, slots = kts + a, slots + b
        return kts, slots
    raise g.refuse(f"the forward pass returns a {type(value).__name__} (tensors or tuples only)")


def convert(module: nn.Module, example_inputs: tuple) -> tuple[Graph, list[KT], KerasSignature]:
    gm, real = read.trace(module, tuple(example_inputs))
    g = Graph()
    states, time_major = _rnn_uses(gm)
    env: dict = {}
    ins: list[Slot] = []
    placeholder = 0
    out = None
    for n in gm.graph.nodes:
        g.where = read.where(n)
        r = real.get(n)
        args, kwargs = map_arg((n.args, n.kwargs), lambda a: env[a])
        if n.op == "placeholder":
            if placeholder < len(example_inputs):
                env[n], slots = _input(g, n, r, placeholder, states, time_major)
                ins += slots
            else:
                env[n] = r  # a parameter left at its default: a constant
            placeholder += 1
            continue
        if n.op == "call_module":
            env[n] = modules.call_module(g, n.target, gm.get_submodule(n.target), r, args, kwargs)
        elif n.op == "call_function":
            env[n] = ops.call_function(g, n.target, list(args), dict(kwargs), r)
        elif n.op == "call_method":
            env[n] = ops.call_method(g, n.target, list(args), dict(kwargs), r)
        elif n.op == "get_attr":
            raise g.refuse(f"the parameter or buffer {n.target!r} used directly in forward")
        elif n.op == "output":
            out = args[0]
        if isinstance(r, torch.Tensor):
            _dtype(g, r, n.name)
    g.where = ""
    outputs, out_slots = _outputs(g, out)
    if not g.inputs:
        raise Refused("the forward pass has no tensor inputs")
    g.finalize(outputs)
    return g, outputs, KerasSignature(tuple(ins), tuple(out_slots))


def save_torch_as_keras(
    module: nn.Module,
    path: str | os.PathLike,
    example_inputs: tuple,
    keras2: bool = False,
    overwrite: bool = False,
) -> KerasSignature:
    """Write ``module`` (traced on ``example_inputs``, in eval mode) as a Keras file.

    ``path``: .keras or .weights.h5 (Keras 3), or .h5 with ``keras2=True`` (tf_keras).
    Returns how Keras's inputs / outputs map to the torch ones: Keras keeps the batch
    first (a time-major tensor is transposed) and takes a state (L*D, B, H) as one input
    (B, H) per layer and direction. Anything without a built-in Keras layer is refused.
    """
    path = Path(path)
    name = path.name.lower()
    if keras2 != (name.endswith(".h5") and not name.endswith(".weights.h5")):
        raise Refused(f"{path}: write .keras or .weights.h5 (Keras 3), or .h5 with keras2=True")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; not overwritten")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    was = module.training
    module.eval()
    try:
        g, outputs, sig = convert(module, tuple(example_inputs))
    finally:
        module.train(was)
    model_name = "".join(c if c.isalnum() else "_" for c in type(module).__name__)
    write.write(path, g, outputs, model_name, keras2)
    return sig
