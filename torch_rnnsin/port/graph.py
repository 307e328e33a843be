"""A Keras model config (Sequential or Functional, Keras 2 or 3, nested) -> a flat call graph.

    Graph.inputs   the model's inputs: InputLayer name, tensor id, batch (fixed or None), shape, dtype
    Graph.calls    every layer call in an order where its inputs exist; a layer called twice
                   (shared weights) appears twice with one ``path``; nested models are inlined,
                   their layers named "outer/inner"
    Graph.outputs  tensor ids, in the model's output order

A tensor id is (layer path, call number, output index). Call arguments other than the first
tensor(s) are kept by name: ``initial_state`` (Keras 2: extra inputs of a recurrent layer),
``mask``, and the layer-specific ones (attention's ``value``/``key``/``attention_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.errors import Refused
from .kinds.base import MAX_SIZE, Layer, call_form, check_entry

MODEL_CLASSES = ("Sequential", "Functional", "Model")
MAX_DEPTH = 32  # nested models inside nested models

Tid = tuple[str, int, int]


@dataclass
class Input:
    name: str
    tid: Tid
    batch: int | None
    shape: tuple[int | None, ...]
    dtype: str


@dataclass
class Call:
    layer: Layer
    args: list[Tid]
    kwargs: dict = field(default_factory=dict)  # name -> Tid | [Tid, ...] | plain value
    number: int = 0  # this layer's n-th call
    chained: bool = False  # inside a Sequential: its one output feeds the next layer

    def out(self, i: int) -> Tid:
        return (self.layer.path, self.number, i)


@dataclass
class Graph:
    name: str
    inputs: list[Input] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    outputs: list[Tid] = field(default_factory=list)
    layers: dict[str, Layer] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, layer: Layer, args: list[Tid], kwargs: dict) -> Call:
        known = self.layers.setdefault(layer.path, layer)
        n = self.counts.get(layer.path, 0)
        self.counts[layer.path] = n + 1
        c = Call(known, args, kwargs, n)
        self.calls.append(c)
        return c


def _dtype(value) -> str:
    if isinstance(value, dict):
        value = (value.get("config") or {}).get("name")
    return str(value or "float32")


def _shape(layer: Layer):
    shape = layer.cfg.get("batch_shape", layer.cfg.get("batch_input_shape"))
    ok = (
        isinstance(shape, list)
        and len(shape) >= 2
        and all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_SIZE)
            for d in shape
        )
    )
    if shape is not None and not ok:
        raise layer.refuse("batch_shape", shape, "a list of sizes (None or >= 1), batch first")
    return shape


def _input(layer: Layer, tid: Tid) -> Input:
    layer.check({"batch_shape", "batch_input_shape", "sparse", "ragged", "optional", "dtype"})
    for key in ("sparse", "ragged", "optional"):
        layer.option(key, False, allowed=(False,))
    shape = _shape(layer)
    if shape is None:
        raise layer.fail("has no input shape")
    dtype = _dtype(layer.cfg.get("dtype"))
    if dtype not in ("float32", "int32", "int64", "bool", "string"):  # strings: see build
        raise layer.refuse("dtype", dtype, "float32, int32, int64 or bool inputs")
    return Input(layer.name, tid, shape[0], tuple(shape[1:]), dtype)


def _layers(config: dict) -> tuple[str, list]:
    cls = config.get("class_name") if isinstance(config, dict) else type(config).__name__
    if cls not in MODEL_CLASSES:
        raise Refused(
            f"model config: class {cls!r} is not supported (Sequential or Functional models)"
        )
    cfg = config.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")  # old Keras 2: a list
    if not isinstance(layers, list) or not layers:
        raise Refused(f"{cls} model config: no layers")
    return cls, layers


def _refs(value) -> list:
    """input_layers / output_layers: ["name", 0, 0], [[...], ...] or a dict of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    out = []
    for v in value or []:
        if not (isinstance(v, list) and len(v) >= 3 and isinstance(v[0], str)):
            raise Refused(f"model config: unreadable input/output reference {str(v)[:80]}")
        out.append((v[0], int(v[1]), int(v[2])))
    return out


def _is_k2_ref(v, names) -> bool:
    return (
        isinstance(v, list)
        and len(v) == 3
        and isinstance(v[0], str)
        and v[0] in names
        and all(isinstance(i, int) and not isinstance(i, bool) for i in v[1:])
    )


def _node(node, layer: Layer, names: set[str]) -> tuple[list, dict]:
    """One call's (positional tensor refs, kwargs with refs), Keras 2 or Keras 3."""
    if isinstance(node, dict) and "args" in node:  # Keras 3: {"args": [...], "kwargs": {...}}

        def conv(v):
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                h = (v.get("config") or {}).get("keras_history") or [None, 0, 0]
                return ("ref", (str(h[0]), int(h[1]), int(h[2])))
            if isinstance(v, list | tuple):
                return [conv(w) for w in v]
            if isinstance(v, dict):
                return {k: conv(w) for k, w in v.items()}
            return v

        args = [conv(a) for a in node.get("args") or []]
        kwargs = {k: conv(v) for k, v in (node.get("kwargs") or {}).items()}
        flat: list = []

        def walk(v):
            if isinstance(v, tuple) and v and v[0] == "ref":
                flat.append(v[1])
            elif isinstance(v, list):
                for w in v:
                    walk(w)
            elif v is not None:
                raise layer.fail(f"called with a non-tensor argument {str(v)[:60]}")

        names = call_form(layer.cls).tensor_args  # (importing .kinds registered them all)
        if names:
            args = _by_name(args, kwargs, names)
        positional = args if names else args[:1]
        for a in positional:
            walk(a)
        for i, a in enumerate(args[len(positional) :], start=len(positional)):
            kwargs[f"arg{i}"] = a
        return flat, kwargs
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        flat, kwargs = [], {}
        for t in node:
            if not (isinstance(t, list) and len(t) >= 3 and isinstance(t[0], str)):
                raise layer.fail(f"unreadable inbound node {str(t)[:80]}")
            flat.append((t[0], int(t[1]), int(t[2])))
            if len(t) >= 4 and isinstance(t[3], dict):
                for k, v in t[3].items():
                    if _is_k2_ref(v, names):
                        kwargs[k] = ("ref", (v[0], int(v[1]), int(v[2])))
                    elif isinstance(v, list) and v and all(_is_k2_ref(w, names) for w in v):
                        kwargs[k] = [("ref", (w[0], int(w[1]), int(w[2]))) for w in v]
                    else:
                        kwargs[k] = v
        if call_form(layer.cls).tensor_args:
            by_name = _by_name([("ref", t) for t in flat], kwargs, call_form(layer.cls).tensor_args)
            flat = [r[1] for r in by_name]
        return flat, kwargs
    raise layer.fail(f"unreadable inbound node {str(node)[:80]}")


def _by_name(args: list, kwargs: dict, names: tuple[str, ...]) -> list:
    """Tensor arguments given by name (MultiHeadAttention's query, value, key), as
    positional arguments in the kind's order."""
    args = list(args)
    for k in names[len(args) :]:
        if k not in kwargs:
            break
        args.append(kwargs.pop(k))
    return args


class _Scope:
    """One (nested) model being inlined: local tensor refs -> global tensor ids."""

    def __init__(self, g: Graph, prefix: str, keras: int, depth: int):
        if depth > MAX_DEPTH:
            raise Refused(f"model config: models nested more than {MAX_DEPTH} deep")
        self.g, self.prefix, self.keras, self.depth = g, prefix, keras, depth
        self.tensors: dict[tuple[str, int, int], Tid] = {}
        self.nodes: dict[tuple[str, int], Call] = {}  # (layer name, node) -> its call

    def layer(self, entry) -> Layer:
        cls, name, cfg = check_entry(entry)
        return Layer(cls, name, cfg, self.keras, self.prefix + name)

    def known(self, ref) -> bool:
        return ref in self.tensors or ref[:2] in self.nodes

    def resolve(self, ref, who: Layer) -> Tid:
        if ref[:2] in self.nodes:
            return self.nodes[ref[:2]].out(ref[2])
        if ref not in self.tensors:
            raise who.fail(
                f"takes tensor {ref[0]!r} (call {ref[1]}, output {ref[2]}), which no layer before it gives"
            )
        return self.tensors[ref]

    def kw(self, v, who: Layer):
        if isinstance(v, tuple) and v and v[0] == "ref":
            return self.resolve(v[1], who)
        if isinstance(v, list):
            return [self.kw(w, who) for w in v]
        if isinstance(v, dict):
            return {k: self.kw(w, who) for k, w in v.items()}
        return v

    def call(self, entry: dict, layer: Layer, args: list[Tid], kwargs: dict) -> list[Tid] | None:
        """Add one call (a nested model: inline it). None: outputs are known only once built."""
        if layer.cls in MODEL_CLASSES:
            inner = _Scope(self.g, layer.path + "/", self.keras, self.depth + 1)
            if kwargs.get("mask") is not None or any(
                k for k in kwargs if k not in ("training", "mask")
            ):
                raise layer.fail(f"a nested model called with {sorted(kwargs)} is not supported")
            return inner.model(entry, args)
        kwargs = {k: v for k, v in kwargs.items() if k != "training" and v is not None}
        if (
            call_form(layer.cls).states_as_inputs
            and len(args) > 1
            and "initial_state" not in kwargs
        ):
            args, kwargs["initial_state"] = args[:1], args[1:]  # Keras 2: states as inputs
        self.g.add(layer, args, kwargs)
        return None

    def model(self, entry: dict, inputs: list[Tid] | None) -> list[Tid]:
        cls, layers = _layers(entry)
        if cls == "Sequential":
            return self.sequential(layers, inputs)
        return self.functional(entry.get("config") or {}, layers, inputs)

    def sequential(self, entries: list, inputs: list[Tid] | None) -> list[Tid]:
        layers = [(e, self.layer(e)) for e in entries]
        if inputs is None:
            first = layers[0][1]
            if first.cls == "InputLayer":
                self.g.inputs.append(_input(first, (first.path, 0, 0)))
            else:
                shape = _shape(first)
                if shape is None:
                    raise first.fail("the model's input shape is not given (no InputLayer)")
                name = f"{first.name}_input"
                self.g.inputs.append(
                    Input(
                        name,
                        (self.prefix + name, 0, 0),
                        shape[0],
                        tuple(shape[1:]),
                        _dtype(first.cfg.get("dtype")),
                    )
                )
            current = self.g.inputs[-1].tid
        elif len(inputs) != 1:
            raise Refused(f"Sequential {self.prefix[:-1]!r}: called on {len(inputs)} inputs")
        else:
            current = inputs[0]
        for e, layer in layers:
            if layer.cls == "InputLayer":
                continue
            outs = self.call(e, layer, [current], {})
            if outs is None:
                self.g.calls[-1].chained = True
                current = self.g.calls[-1].out(0)
            elif len(outs) != 1:
                raise layer.fail(f"gives {len(outs)} outputs inside a Sequential model")
            else:
                current = outs[0]
        return [current]

    def functional(self, cfg: dict, entries: list, inputs: list[Tid] | None) -> list[Tid]:
        names = {check_entry(e)[1] for e in entries}
        if len(names) != len(entries):
            raise Refused(
                f"model config {self.prefix[:-1] or cfg.get('name')!r}: two layers share a name"
            )
        in_refs, out_refs = _refs(cfg.get("input_layers")), _refs(cfg.get("output_layers"))
        inputs_here = {check_entry(e)[1] for e in entries if check_entry(e)[0] == "InputLayer"}
        for ref in in_refs:
            if ref[0] not in inputs_here:
                raise Refused(f"model config: input {ref[0]!r} is not an InputLayer of the model")
        if inputs is not None and len(inputs) != len(in_refs):
            raise Refused(
                f"model {self.prefix[:-1]!r}: called on {len(inputs)} inputs, it has {len(in_refs)}"
            )
        pending = []
        for e in entries:
            layer = self.layer(e)
            if layer.cls == "InputLayer":
                ref = (layer.name, 0, 0)
                if ref not in in_refs:
                    raise layer.fail("is not one of the model's inputs")
                if inputs is None:
                    self.g.inputs.append(_input(layer, (layer.path, 0, 0)))
                    self.tensors[ref] = self.g.inputs[-1].tid
                else:
                    self.tensors[ref] = inputs[in_refs.index(ref)]
                continue
            nodes = e.get("inbound_nodes") or []
            if not nodes:
                raise layer.fail("is never called in the model")
            for k, node in enumerate(nodes):
                pending.append((e, layer, k, node))
        if inputs is None:  # the model's own inputs in input_layers order
            order = {ref[0]: i for i, ref in enumerate(in_refs)}
            mine = [i for i in self.g.inputs if i.tid[0].startswith(self.prefix)]
            rest = [i for i in self.g.inputs if i not in mine]
            self.g.inputs[:] = rest + sorted(mine, key=lambda i: order.get(i.name, 0))
        while pending:  # in dependency order (Keras lists layers in order; nodes may not be)
            progressed = []
            for item in pending:
                e, layer, k, node = item
                args, kwargs = _node(node, layer, names)
                needed = list(args) + _kw_refs(kwargs)
                if not all(self.known(r) for r in needed):
                    continue
                outs = self.call(
                    e, layer, [self.resolve(r, layer) for r in args], self.kw(kwargs, layer)
                )
                if outs is None:  # its outputs are counted once it is built
                    self.nodes[(layer.name, k)] = self.g.calls[-1]
                else:
                    k2 = k + _skipped_first_node(e, self.keras)
                    for i, t in enumerate(outs):
                        self.tensors[(layer.name, k2, i)] = t
                progressed.append(item)
            if not progressed:
                e, layer, k, node = pending[0]
                args, kwargs = _node(node, layer, names)
                missing = [r for r in list(args) + _kw_refs(kwargs) if not self.known(r)]
                raise layer.fail(
                    f"takes tensor {missing[0][0]!r}, which no layer of the model gives"
                )
            pending = [p for p in pending if p not in progressed]
        return [self.resolve(r, Layer("Model", self.prefix[:-1] or "model", {})) for r in out_refs]


def _skipped_first_node(entry: dict, keras: int) -> int:
    """Keras 2 numbers a nested model's calls from 1 when the model starts with its own
    InputLayer (its node 0 is the one built with it, never saved)."""
    if keras != 2:
        return 0
    cfg = entry.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers") or []
    return int(
        bool(layers) and isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer"
    )


def _kw_refs(kwargs) -> list:
    out = []

    def walk(v):
        if isinstance(v, tuple) and v and v[0] == "ref":
            out.append(v[1])
        elif isinstance(v, list):
            for w in v:
                walk(w)
        elif isinstance(v, dict):
            for w in v.values():
                walk(w)

    walk(kwargs)
    return out


def parse(config: dict, keras: int = 3) -> Graph:
    """The flat call graph of a model config; custom layers and unreadable graphs refused."""
    if not isinstance(config, dict):
        raise Refused(f"model config: expected a JSON object, got {type(config).__name__}")
    cfg = config.get("config")
    name = str((cfg.get("name") if isinstance(cfg, dict) else None) or "model")
    g = Graph(name)
    g.outputs = _Scope(g, "", keras, 0).model(config, None)
    if not g.inputs:
        raise Refused("model config: no inputs")
    return g
