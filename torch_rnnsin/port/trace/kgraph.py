"""The Keras Functional graph being built: layers, references to their outputs, and views.

A torch value is one of:
    KT      one Keras tensor seen from torch: ``perm[i]`` is the Keras axis of torch axis i
            (Keras always has the batch first; torch may not, e.g. ``batch_first=False``)
    Stack   Keras tensors stacked along torch axis 0, as nn.RNN's h_n (L*D, B, H): one
            Keras tensor (B, H) per layer and direction
    Zeros   a ``torch.zeros`` state (the same as no initial state)
    Opaque  a size or shape number: only ``torch.zeros`` may use it
plus Python tuples / lists / constants of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...common.errors import Refused


@dataclass
class Layer:
    """One Keras layer and the call that produced its outputs (Keras 3 call structure)."""

    cls: str
    name: str
    config: dict  # without "name"; RNN flags filled in by ``finalize``
    args: list = field(default_factory=list)  # KT or [KT, ...] per positional argument
    kwargs: dict = field(default_factory=dict)  # e.g. {"initial_state": [KT, ...]}
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (Keras 2 name, array)
    rnn_states: int = 0  # recurrent layers: states per direction (LSTM 2, else 1)
    bidirectional: bool = False
    dynamic: set[int] = field(default_factory=set)  # InputLayer: axes left None (time)
    dtype: str = "float32"
    shape: tuple[int, ...] = ()  # InputLayer: the Keras shape, batch included
    wants: set = field(default_factory=set)  # recurrent layers: "seq", "last", state indices

    def index(self, what) -> int:
        """The Keras output index of ``what``: "seq" / "last" for recurrent layers, else int."""
        if not self.rnn_states:
            return int(what)
        if what == "seq":
            return 0
        if what == "last":  # out[:, -1] of a forward layer: its output, or its h state
            return 1 if "seq" in self.wants else 0
        return int(what)


@dataclass(frozen=True)
class KT:
    layer: Layer
    what: object  # output index, or "seq" / "last" for a recurrent layer
    kshape: tuple[int, ...]  # Keras shape, batch first (sizes from the example inputs)
    perm: tuple[int, ...]  # torch axis i is Keras axis perm[i]
    dtype: str = "float32"

    @property
    def tshape(self) -> tuple[int, ...]:
        return tuple(self.kshape[p] for p in self.perm)

    def keras_ref(self) -> list:
        return [self.layer.name, 0, self.layer.index(self.what)]

    def keras3(self) -> dict:
        shape = [None, *self.kshape[1:]]
        hist = self.keras_ref()
        return {
            "class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": self.dtype, "keras_history": hist},
        }


@dataclass(frozen=True)
class Stack:
    items: tuple[KT, ...]


@dataclass(frozen=True)
class Zeros:
    pass


@dataclass(frozen=True)
class Opaque:
    value: object


def identity(n: int) -> tuple[int, ...]:
    return tuple(range(n))


class Graph:
    """Layers in call order (inputs first), unique names, and the layout helpers."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.inputs: list[Layer] = []
        self.names: set[str] = set()
        self.static_time = False  # a time index (Cropping1D) needs the example's length
        self.where = ""  # the source line of the node being converted, for refusals

    def refuse(self, what: str) -> Refused:
        return Refused(f"{what}{self.where}")

    def unique(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base).strip("_") or "layer"
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def add(self, cls: str, base: str, config: dict, args=(), kwargs=None, weights=()) -> Layer:
        layer = Layer(cls, self.unique(base), dict(config), list(args), dict(kwargs or {}))
        layer.weights = list(weights)
        self.layers.append(layer)
        return layer

    def input(self, base: str, kshape: tuple[int, ...], dtype: str) -> Layer:
        layer = self.add("InputLayer", base, {})
        layer.shape, layer.dtype = tuple(kshape), dtype
        self.inputs.append(layer)
        return layer

    def one(self, cls: str, base: str, config: dict, x: KT, kshape, perm, weights=()) -> KT:
        """A layer of one input and one output; its output as a KT."""
        layer = self.add(cls, base, config, [x], weights=weights)
        return KT(layer, 0, tuple(kshape), tuple(perm), x.dtype)

    def layout(self, x: KT, want: tuple[int, ...], why: str) -> KT:
        """``x`` with torch axis i at Keras axis want[i]: a Keras Permute if needed."""
        if len(want) != len(x.perm):
            raise self.refuse(f"{why}: expected a {len(want)}-d tensor, got {len(x.perm)}-d")
        if x.perm == want:
            return x
        src = {w: x.perm[i] for i, w in enumerate(want)}  # new Keras axis -> old Keras axis
        if src[0] != 0:
            raise self.refuse(f"{why}: the batch axis would move (Keras keeps the batch first)")
        dims = [src[j] for j in range(1, len(want))]
        kshape = (x.kshape[0], *(x.kshape[d] for d in dims))
        return self.one("Permute", "permute", {"dims": dims}, x, kshape, want)

    def last_axis(self, x: KT, why: str) -> KT:
        """``x`` laid out so that torch's last axis is Keras's last axis."""
        n = len(x.perm)
        if x.perm[-1] == n - 1:
            return x
        want = list(x.perm)
        j = want.index(n - 1)
        want[j], want[-1] = want[-1], want[j]
        return self.layout(x, tuple(want), why)

    def finalize(self, outputs: list[KT]) -> None:
        """Which outputs of each recurrent layer are used: return_sequences / return_state."""
        used = [x for layer in self.layers for x in kts(layer.args, layer.kwargs)] + outputs
        for x in used:
            if x.layer.rnn_states:
                x.layer.wants.add(x.what)
        for layer in self.layers:
            if layer.rnn_states:
                seq, w = "seq" in layer.wants, layer.wants
                state = any(isinstance(k, int) for k in w) or ("last" in w and seq)
                flags = {"return_sequences": seq, "return_state": state}
                if not layer.bidirectional:
                    layer.config.update(flags)
                for key in ("layer", "backward_layer"):
                    if key in layer.config:
                        layer.config[key]["config"].update(flags)


def kts(*values) -> list[KT]:
    """Every KT inside nested lists / tuples / dicts, in order."""
    out: list[KT] = []
    for v in values:
        if isinstance(v, KT):
            out.append(v)
        elif isinstance(v, Stack):
            out.extend(v.items)
        elif isinstance(v, (list, tuple)):
            out.extend(kts(*v))
        elif isinstance(v, dict):
            out.extend(kts(*v.values()))
    return out
