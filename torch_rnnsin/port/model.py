"""The ported model: a Keras call graph run over real torch modules.

model = load_keras_model("seq2seq.keras")      # eval mode, float32, no Keras needed
y = model(x)                                   # one input -> one tensor (Keras's predict)
y1, y2 = model(x1, x2, x3)                     # inputs in Keras's order; outputs a tuple
y, state = model(x, state=None, return_state=True)   # streamable models: state carried
save_keras_model(model, "back.keras")          # .keras, .weights.h5, .safetensors, .pt
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.atomic import no_replace
from ..common.errors import Refused
from . import io as files
from . import tables, trace
from .graph import Call, Graph, parse
from .kinds import Block, Spec, build
from .kinds.base import REFUSED

ARCH_FORMAT = "torch_rnnsin.port"
TORCH_EXTS = (".pt", ".safetensors")
KERAS_OUT_EXTS = (".keras", ".weights.h5")
DTYPES = {"float32": torch.float32, "int32": torch.int32, "int64": torch.int64, "bool": torch.bool}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as Keras names it: shape with the batch axis first (None: free)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    high: int | None = (
        None  # integer inputs: the exclusive bound of valid ids (an Embedding's input_dim)
    )


class PortedModel(nn.Module):
    """A Keras model as torch modules: ``layers`` holds one block per Keras layer (shared
    layers once), ``graph`` the calls between them."""

    def __init__(
        self,
        graph: Graph,
        blocks: dict[str, Block],
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ):
        super().__init__()
        self.graph = graph
        self.layers = nn.ModuleList(blocks.values())
        self._index = {p: i for i, p in enumerate(blocks)}
        self.inputs, self.outputs = inputs, outputs
        self.keras_model_name = graph.name
        self.source_format = ""  # what it was loaded from: keras3, keras3-h5, keras2-h5, pt, ...
        self.keras_version = 3
        self._carried = [c for c in graph.calls if self.block(c).state_sizes]

    def block(self, call: Call) -> Block:
        return self.layers[self._index[call.layer.path]]

    # --- state -----------------------------------------------------------------------------
    @property
    def state_sizes(self) -> list[int]:
        return (
            [h for c in self._carried for h in self.block(c).state_sizes] if self.streamable else []
        )

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """Each carried state tensor's shape without the batch: (H,) for SimpleRNN / LSTM /
        GRU, (*spatial, filters) maps for ConvLSTM."""
        if not self.streamable:
            return []
        return [tuple(s) for c in self._carried for s in self.block(c).state_shapes]

    @property
    def streamable(self) -> bool:
        """Two chunks with the state handed on give what one call gives: the model has a
        recurrent layer, every recurrent call can carry its state (none reads backwards, is
        shared, or takes its initial state from another layer), and every layer that sees the
        time axis computes each step from the same step (no convolution or pooling over time,
        no attention, no Flatten across it)."""
        return not self._streaming()[0]

    def why_not_streamable(self) -> str | None:
        """The layers that keep the model from carrying its state, and why (None: it can)."""
        return (
            "; ".join(f"{who}: {why}" if who else why for who, why in self._streaming()[0]) or None
        )

    @property
    def timed_outputs(self) -> list[bool]:
        """Per model output: whether it keeps the streamed time axis (axis 1), so that chunks'
        outputs join along it; otherwise the last chunk's output is the whole call's."""
        return self._streaming()[1]

    def _streaming(self) -> tuple[list[tuple[str, str]], list[bool]]:
        """((layer, why) for each layer that cannot stream, timed flag per model output), from
        one walk over the graph: every input carries the time axis at axis 1; each call says
        which of its outputs keep it. The graph is fixed: computed once."""
        done = self.__dict__.get("_stream")
        if done is not None:
            return done
        timed: dict = {spec.tid: True for spec in self.graph.inputs}
        reasons: list[tuple[str, str]] = []
        for c in self.graph.calls:
            b = self.block(c)
            ins = [timed.get(t, False) for t in [*c.args, *_tids(c.kwargs)]]
            n = len(b.output_specs)
            why = self._why_not(c) if (b.state_sizes or not b.streamable) else None
            if why is None and None in ins:  # behind a layer already named: nothing to add
                flags: list | str = [None] * n
            else:
                flags = why or b.timed_outputs(ins)
            if isinstance(flags, str):
                reasons.append((f"{b.keras_class} {b.keras_name!r}", flags))
                flags = [None] * n
            for i, f in enumerate(flags):
                timed[c.out(i)] = f
        if not self._carried:
            reasons.append(("", "no recurrent layer"))
        outs = [bool(timed.get(t)) for t in self.graph.outputs]
        done = self._stream = (list(dict.fromkeys(reasons)), outs)
        return done

    def _why_not(self, c: Call) -> str | None:
        """Why a recurrent call cannot carry its state (None: it can)."""
        b = self.block(c)
        if not b.streamable:
            return b.not_streamable
        if "initial_state" in c.kwargs:
            return "its initial state comes from another layer"
        if self.graph.counts[c.layer.path] > 1:
            return "it is called more than once"
        return None

    def _refuse_state(self) -> None:
        for who, why in self._streaming()[0]:
            if not who:
                raise Refused("state in/out: the model has no recurrent layer")
            raise Refused(
                f"{who}: state in/out is not supported: {why}, so a chunk cannot continue from a carried state"
            )

    def _split_state(self, state, B: int) -> dict[int, list]:
        shapes = [(B, *s) for c in self._carried for s in self.block(c).state_shapes]
        state = list(state)
        if len(state) != len(shapes):
            raise Refused(f"state: expected {len(shapes)} tensors, got {len(state)}")
        for k, (s, want) in enumerate(zip(state, shapes, strict=True)):
            if not isinstance(s, torch.Tensor) or tuple(s.shape) != want:
                got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
                raise Refused(f"state[{k}]: expected shape {want}, got {got}")
        per, i = {}, 0
        for c in self._carried:
            n = len(self.block(c).state_sizes)
            per[id(c)] = state[i : i + n]
            i += n
        return per

    # --- running ---------------------------------------------------------------------------
    def _check_inputs(self, xs) -> list[torch.Tensor]:
        """The inputs as the model takes them; the messages are built only on a refusal (the
        checks run on every call, one streamed step included)."""
        if len(xs) != len(self.inputs):
            names = ", ".join(i.name for i in self.inputs)
            raise Refused(f"inputs: the model takes {len(self.inputs)} ({names}), got {len(xs)}")
        out = []
        for x, spec in zip(xs, self.inputs, strict=True):
            if not isinstance(x, torch.Tensor) or x.ndim != len(spec.shape):
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise Refused(f"input {spec.name!r}: expected {_want(spec)}, got {got}")
            shape = x.shape
            for d, n in zip(spec.shape, shape, strict=True):
                if d is not None and d != n:
                    break
            else:
                d = None
            if d is not None or (len(shape) > 1 and shape[1] == 0):
                raise Refused(
                    f"input {spec.name!r}: expected {_want(spec)}, got shape {tuple(shape)}"
                )
            dtype = x.dtype
            if spec.dtype == "float32":
                if dtype == torch.float32:
                    out.append(x)
                    continue
                if dtype == torch.bool or x.is_complex():
                    raise Refused(f"input {spec.name!r}: expected a float32 tensor, got {dtype}")
                if not x.is_floating_point():
                    x = x.to(torch.float32)  # token ids declared float32 (Keras's default)
            elif spec.dtype == "bool":
                if dtype != torch.bool:
                    raise Refused(f"input {spec.name!r}: expected a bool tensor, got {dtype}")
            elif spec.dtype.startswith("int"):
                if x.is_floating_point() or dtype == torch.bool or x.is_complex():
                    raise Refused(
                        f"input {spec.name!r}: expected integer token ids (int32 or int64), got {dtype}"
                    )
            elif dtype == torch.bool or x.is_complex():
                raise Refused(f"input {spec.name!r}: expected a float32 tensor, got {dtype}")
            elif not x.is_floating_point():
                x = x.to(torch.float32)
            out.append(x)
        return out

    def forward(self, *xs: torch.Tensor, state=None, return_state: bool = False):
        """Inputs in Keras's order -> outputs as Keras's predict gives them (a tuple when
        several); with return_state, also the new flat carried state."""
        y, new, _ = self._run(xs, state, return_state, None)
        return (y, new) if return_state else y

    def _run(self, xs, state, return_state: bool, trace):
        if state is not None or return_state:
            plan = self.__dict__.get("_state_plan")
            if plan is None:  # the graph fixes it: checked once, then reused every call
                self._refuse_state()
                plan = self._state_plan = self._plan_state()
        xs = self._check_inputs(xs)
        env: dict = {spec.tid: x for spec, x in zip(self.graph.inputs, xs, strict=True)}
        masks: dict = {}
        carried = self._carry(plan, state, xs[0].shape[0]) if state is not None else {}
        new: list[torch.Tensor] = []
        calls = self.__dict__.get("_calls")
        if calls is None:  # each call with its block, looked up once
            calls = self._calls = [(c, self.block(c)) for c in self.graph.calls]
        for c, b in calls:
            args = [env[t] for t in c.args]
            kwargs = {k: _resolve(v, env) for k, v in c.kwargs.items()} if c.kwargs else {}
            arg_masks = [masks.get(t) for t in c.args] if masks else [None] * len(args)
            outs, out_mask, final = b.apply(args, arg_masks, kwargs, carried.get(id(c)))
            if b.state_sizes and final is not None:
                new += final
            for i, y in enumerate(outs):
                env[c.out(i)] = y
                m = out_mask[i] if isinstance(out_mask, list) else (out_mask if i == 0 else None)
                if m is not None:
                    masks[c.out(i)] = m
            if trace is not None and self.graph.counts[c.layer.path] == 1:
                trace.append((f"{b.keras_class} {b.keras_name!r}", outs))
        try:
            ys = [env[t] for t in self.graph.outputs]
        except KeyError as e:
            raise Refused(
                f"model config: output {e.args[0][0]!r} #{e.args[0][2]} does not exist"
            ) from None
        return (ys[0] if len(ys) == 1 else tuple(ys)), new, trace

    def _plan_state(self) -> tuple[list[tuple], list[tuple[int, int, int]]]:
        """The flat state's shapes (no batch), and each carried call's (index in the graph,
        slice)."""
        sizes = [tuple(s) for c in self._carried for s in self.block(c).state_shapes]
        where, i = [], 0
        for c in self._carried:
            n = len(self.block(c).state_sizes)
            where.append((self.graph.calls.index(c), i, i + n))
            i += n
        return sizes, where

    def _carry(self, plan, state, B: int) -> dict[int, list]:
        """The carried state per call (as ``_split_state``, which words a refusal)."""
        sizes, where = plan
        state = state if isinstance(state, list) else list(state)
        if len(state) != len(sizes) or not all(
            isinstance(s, torch.Tensor)
            and s.ndim == len(h) + 1
            and s.shape[0] == B
            and s.shape[1:] == h
            for s, h in zip(state, sizes, strict=True)
        ):
            return self._split_state(state, B)
        calls = self.graph.calls
        return {id(calls[k]): state[a:b] for k, a, b in where}

    def layer_outputs(self, *xs: torch.Tensor) -> list[tuple[str, list[torch.Tensor]]]:
        """Every layer's outputs (layers called once), in call order, for ``port --check``."""
        return self._run(xs, None, False, [])[2]

    # --- Keras back ------------------------------------------------------------------------
    def keras_config(self) -> dict:
        """A Keras 3 Functional config that Keras loads back into the same model."""
        return _functional_config(self)

    def keras_weights(self) -> dict[str, dict[str, list[np.ndarray]]]:
        """Layer name -> {Keras 3 group path: arrays} (nested models' layers flattened)."""
        out = {}
        for b in self.layers:
            parts = b.write_parts()
            if parts:
                out[keras_name(b.keras_path)] = {p.sub: tables.torch_to_keras(p) for p in parts}
        return out


def _want(spec: TensorSpec) -> str:
    """What an input must be, in words (for a refusal)."""
    return f"a tensor of shape {dims_text(spec.shape, '>= 1')}, {spec.dtype}"


def dims_text(shape, time_note: str = "") -> str:
    """(batch, time, 3): the free sizes named."""
    names = ["batch", f"time {time_note}".strip()]
    return (
        "("
        + ", ".join(
            str(d) if d is not None else names[min(i, 1)] if i < 2 else "any"
            for i, d in enumerate(shape)
        )
        + ")"
    )


def _tids(kwargs: dict) -> list:
    """The tensor ids among a call's named arguments (initial_state, mask, value, ...)."""
    out = []
    for v in kwargs.values():
        for w in v if isinstance(v, list) else [v]:
            if isinstance(w, tuple) and len(w) == 3 and isinstance(w[0], str):
                out.append(w)
    return out


def _resolve(v, env):
    if isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], str):
        return env[v]
    if isinstance(v, list):
        return [_resolve(w, env) for w in v]
    return v


def keras_name(path: str) -> str:
    """A nested layer's name in the flat model written back (Keras forbids "/")."""
    return path.replace("/", "__")


def _tensor_json(tid, spec: Spec | None, names: dict) -> dict:
    shape = [None, *spec.shape] if spec is not None else None
    dtype = spec.dtype if spec is not None else "float32"
    return {
        "class_name": "__keras_tensor__",
        "config": {
            "shape": shape,
            "dtype": dtype,
            "keras_history": [names[tid[0]], tid[1], tid[2]],
        },
    }


def _functional_config(model: PortedModel) -> dict:
    g = model.graph
    names = {i.tid[0]: i.name for i in g.inputs}
    specs = {i.tid: Spec(i.shape, i.dtype) for i in g.inputs}
    layers = []
    for i in g.inputs:
        cfg = {
            "batch_shape": [i.batch, *i.shape],
            "dtype": i.dtype,
            "sparse": False,
            "name": i.name,
        }
        layers.append(
            {
                "module": "keras.layers",
                "class_name": "InputLayer",
                "config": cfg,
                "registered_name": None,
                "name": i.name,
                "inbound_nodes": [],
            }
        )
    nodes: dict[str, list] = {}
    order: list[Block] = []
    for c in g.calls:
        b = model.block(c)
        names[c.layer.path] = keras_name(c.layer.path)
        for k, s in enumerate(b.output_specs):
            specs[c.out(k)] = s

        def conv(v):
            if isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], str):
                return _tensor_json(v, specs.get(v), names)
            if isinstance(v, list):
                return [conv(w) for w in v]
            return v

        args = [conv(t) for t in c.args]
        node = {
            "args": [args[0] if len(args) == 1 else args],
            "kwargs": {k: conv(v) for k, v in c.kwargs.items() if not k.startswith("arg")},
        }
        extra = sorted(k for k in c.kwargs if k.startswith("arg"))
        node["args"] += [conv(c.kwargs[k]) for k in extra]
        if b.keras_class == "MultiHeadAttention":
            node["args"] = args
        if c.layer.path not in nodes:
            nodes[c.layer.path] = []
            order.append(b)
        nodes[c.layer.path].append(node)
    for b in order:
        e = b.keras_entry()
        e["config"] = dict(e["config"], name=keras_name(b.keras_path))
        e["name"] = keras_name(b.keras_path)
        e["inbound_nodes"] = nodes[b.keras_path]
        layers.append(e)

    def ref(t):
        return [names[t[0]], t[1], t[2]]

    cfg = {
        "name": g.name,
        "trainable": True,
        "layers": layers,
        "input_layers": [ref(i.tid) for i in g.inputs],
        "output_layers": [ref(t) for t in g.outputs],
    }
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": cfg,
        "registered_name": "Functional",
    }


# --- config -> model ---------------------------------------------------------------------------


def _high(g: Graph, blocks: dict[str, Block], tid) -> int | None:
    for c in g.calls:
        if tid in c.args and getattr(blocks[c.layer.path], "embedding", None) is not None:
            return blocks[c.layer.path].embedding.num_embeddings
    return None


def build_model(
    config: dict, weights: dict | None = None, *, keras: int = 3, empty: bool = False
) -> PortedModel:
    """The model of a Keras config; with ``weights`` (layer path -> arrays) filled in, all
    checked first. Built on the meta device (no memory, no initialisation thrown away);
    ``empty=True`` leaves it there for ``load_state_arrays``; with neither, small random
    values (a config-only model, for tests and shapes)."""
    g = parse(config, keras)
    specs: dict = {i.tid: Spec(i.shape, i.dtype) for i in g.inputs}
    blocks: dict[str, Block] = {}
    with torch.device("meta"):
        for c in g.calls:
            ins = [specs[t] for t in c.args]
            if any(i.dtype == "string" for i in ins):
                _refuse_strings(c)
            if c.layer.path not in blocks:
                blocks[c.layer.path] = build(c.layer, ins)
            b = blocks[c.layer.path]
            b.check_call(c.args, c.kwargs)
            for k, s in enumerate(b.output_specs):
                specs[c.out(k)] = s
    _sequential_outputs(g, blocks)
    missing = [t for t in g.outputs if t not in specs]
    if missing:
        raise Refused(f"model config: output {missing[0][0]!r} #{missing[0][2]} does not exist")
    inputs = [
        TensorSpec(i.name, (i.batch, *i.shape), i.dtype, _high(g, blocks, i.tid)) for i in g.inputs
    ]
    out_names = []
    for t in g.outputs:
        out_names.append(
            t[0] if sum(1 for u in g.outputs if u[0] == t[0]) == 1 else f"{t[0]}_{t[2]}"
        )
    outputs = [
        TensorSpec(n, (None, *specs[t].shape), specs[t].dtype)
        for n, t in zip(out_names, g.outputs, strict=True)
    ]
    model = PortedModel(g, blocks, inputs, outputs)
    model.keras_version = keras
    if weights is not None:
        load_keras_arrays(model, weights)
    elif not empty:
        _random_fill(model)
    return model.eval()


def _random_fill(model: PortedModel, scale: float = 0.5) -> None:
    _materialize(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for b in model.layers:
            for p in b.parts():
                for r in p.rows:
                    t = (
                        p.module.get_parameter(r.torch)
                        if r.torch in dict(p.module.named_parameters())
                        else p.module.get_buffer(r.torch)
                    )
                    if r.zero:
                        t.zero_()
                        t.requires_grad_(False)
                    else:
                        t.copy_(torch.rand(t.shape, generator=gen) * 2 * scale - scale)


def _refuse_strings(c: Call) -> None:
    why = REFUSED.get(c.layer.cls, "only numbers and booleans flow between torch modules")
    raise Refused(f"{c.layer.cls} {c.layer.name!r}: takes a string input, not ported ({why})")


def _sequential_outputs(g: Graph, blocks: dict[str, Block]) -> None:
    """In a Sequential, a layer with several outputs (Bidirectional, merge_mode=None) must be
    the last, and then all its outputs are the model's."""
    used = {t for c in g.calls for t in c.args}
    for c in g.calls:
        b = blocks[c.layer.path]
        n = len(b.output_specs)
        if not c.chained or n == 1:
            continue
        if c.out(0) in used:
            nxt = next(d for d in g.calls if c.out(0) in d.args)
            raise Refused(
                f"{nxt.layer.cls} {nxt.layer.name!r}: follows {b.keras_class} {b.keras_name!r} with "
                f"{n} outputs (merge_mode=None or return_state); in a Sequential model only the last layer may have several"
            )
        if c.out(0) in g.outputs:
            i = g.outputs.index(c.out(0))
            g.outputs[i : i + 1] = [c.out(k) for k in range(n)]


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def _materialize(model: PortedModel) -> None:
    """Memory for every tensor, after every shape was checked against the file and the total
    against the memory this machine has."""
    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    have = _available_bytes()
    if need > have:
        big = max(model.layers, key=lambda b: sum(t.numel() for t in b.state_dict().values()))
        raise Refused(
            f"{big.keras_class} {big.keras_name!r}: the model needs {need / 2**30:.1f} GiB of weights, "
            f"more than the {have / 2**30:.1f} GiB of memory available"
        )
    # torch.empty, not to_empty: empty_like on a meta tensor runs torch's Python reference,
    # whose first call imports sympy (0.5 s, more than the whole load of a 100 MB model)
    model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device="cpu"))


def _layer_arrays(b: Block, lw, where: str) -> list[list]:
    """A layer's stored arrays, per part: Keras 3 files by group path, legacy ones in order."""
    parts = b.parts()
    if isinstance(lw, list):
        lw = {"": lw}
    if not isinstance(lw, dict):
        raise Refused(f"{where}: unreadable weights")
    if all(p.sub in lw for p in parts) and set(lw) <= {p.sub for p in parts}:
        return [list(lw[p.sub]) for p in parts]
    if list(lw) == [""]:  # legacy .h5: the layer's arrays in get_weights() order
        flat, out, i = list(lw[""]), [], 0
        need = sum(len(p.names) for p in parts)
        if len(flat) != need:
            raise Refused(f"{where}: expected {need} arrays, got {len(flat)}")
        for p in parts:
            out.append(flat[i : i + len(p.names)])
            i += len(p.names)
        return out
    raise Refused(
        f"{where}: the file has weight groups {sorted(lw)}, expected {[p.sub for p in parts]}"
    )


def load_keras_arrays(model: PortedModel, weights: dict) -> None:
    """Keras arrays (layer path -> arrays) into the model's tensors; everything checked first."""
    wanted = {b.keras_path: b for b in model.layers if b.parts()}
    extra = sorted(set(k for k, v in weights.items() if v) - set(wanted))
    if extra:
        raise Refused(f"weights for layers {extra} that the model config does not have")
    plan = []
    for path, b in wanted.items():
        where = f"{b.keras_class} {b.keras_name!r}"
        if path not in weights:
            raise Refused(f"{where}: no weights in the file")
        for p, arrays in zip(b.parts(), _layer_arrays(b, weights[path], where), strict=True):
            half = f" ({p.sub.split('/')[0]})" if b.keras_class == "Bidirectional" else ""
            tables.check_arrays(p, arrays, where + half, finite=False)  # finite: as copied
            plan.append((p, arrays, where + half))
    _materialize(model)
    for p, arrays, where in plan:
        tables.keras_to_torch(p, arrays, where, copied=files.release)  # a file read in place:
        # its pages are handed back as soon as they are in torch
    _check_filled(model, {id(p.module) for p, _, _ in plan})


def _check_filled(model: PortedModel, filled: set[int]) -> None:
    for b in model.layers:
        for p in b.parts():
            assert id(p.module) in filled, f"{b.keras_name}: part {p.sub!r} was not filled"


def load_state_arrays(model: PortedModel, sd: dict) -> None:
    """A torch state_dict of NumPy arrays into the model: same keys, same shapes, finite."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise Refused(
            f"state_dict does not match the architecture: missing {missing[:5]}, extra {extra[:5]}"
        )
    arrays = {}
    for k, t in own.items():
        a = tables.as_float32(k, sd[k])
        if a.shape != tuple(t.shape):
            raise Refused(f"{k}: expected shape {tuple(t.shape)}, got {a.shape}")
        arrays[k] = a
    _materialize(model)
    own = model.state_dict()
    with torch.no_grad():
        for k, t in own.items():
            t.copy_(torch.from_numpy(arrays[k]))


# --- files -------------------------------------------------------------------------------------


def _ext(path: Path) -> str:
    name = path.name.lower()
    for ext in (".weights.h5", ".safetensors", ".keras", ".pt", ".h5"):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def _major(version) -> int:
    return 2 if str(version or "3").startswith("2") else 3


def load_keras_model(path: str | os.PathLike, arch: str | os.PathLike | None = None) -> PortedModel:
    """A Keras model file as a torch ``PortedModel`` (eval mode, float32).

    ``path``: .keras, Keras 3 or Keras 2 .h5, .weights.h5 (with ``arch``: a .keras or a config
    .json), or a .safetensors / .pt written by ``save_keras_model``. Nothing is unpickled and
    Keras is never imported; a layer or option that cannot be ported exactly is refused.
    """
    path = Path(path)
    if _ext(path) in TORCH_EXTS:
        sd, meta = files.read_torch_file(path)
        if not isinstance(meta, dict) or meta.get("format") != ARCH_FORMAT:
            raise Refused(f"{path}: no {ARCH_FORMAT} architecture in the file")
        if arch is not None:
            raise Refused(f"{path}: holds its own architecture; --arch is not needed")
        try:
            model = build_model(
                meta.get("keras_config"), keras=_major(meta.get("keras_version")), empty=True
            )
            load_state_arrays(model, sd)
        except Refused as e:
            raise Refused(f"{path}: {e}") from None
        model.source_format = _ext(path)[1:]
        return model.eval()
    kf = files.read_keras(path, arch)
    keras = _major(getattr(kf, "keras_version", None) or ("2" if "keras2" in kf.dialect else "3"))
    try:
        model = build_model(kf.config, kf.weights, keras=keras)
    except Refused as e:
        raise Refused(f"{path}: {e}") from None
    model.source_format = kf.dialect
    return model.eval()


def save_keras_model(
    model: nn.Module,
    path: str | os.PathLike,
    overwrite: bool = False,
    example_inputs: tuple | None = None,
    keras2: bool = False,
) -> Path:
    """Write ``model`` as .keras / .weights.h5 (Keras 3), .safetensors or .pt, atomically.

    ``model``: a ported model, or any torch module built from supported kinds (nn.RNN /
    nn.LSTM / nn.GRU, nn.Linear, nn.Embedding, ...), whose forward is traced on
    ``example_inputs`` (a Keras 2 .h5 with ``keras2=True``). An existing file is never
    replaced unless ``overwrite=True`` (and then only a file: a symbolic link is refused,
    dangling or not); without it the file appears by a no-replace rename, so that a writer
    racing for the same name gets ``FileExistsError``. NaN/inf weights are refused, naming
    the tensor, before anything is written.
    """
    path = Path(path)
    if path.is_symlink():
        raise Refused(f"{path}: a symbolic link; save_keras_model never writes through or over one")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; not overwritten")
    if isinstance(model, nn.Module):
        check_finite_weights(model, str(path))
    with contextlib.nullcontext() if overwrite else no_replace():
        return _save(model, path, overwrite, example_inputs, keras2)


def check_finite_weights(model: nn.Module, what: str) -> None:
    """Refuse a model holding NaN or inf in any floating parameter or buffer, naming it.
    A tensor's min and max are NaN or inf iff some element is: no copies of the weights
    (torch.isfinite allocates |t| and three masks, 1.75x each tensor)."""
    for name, t in model.state_dict().items():
        floating = torch.is_tensor(t) and t.is_floating_point() and t.numel()
        if floating and not bool(torch.isfinite(torch.stack(torch.aminmax(t))).all()):
            raise Refused(f"{what}: tensor {name!r} holds NaN or inf values; not written")


def _save(model, path: Path, overwrite: bool, example_inputs, keras2: bool) -> Path:
    if not isinstance(model, PortedModel):
        if not isinstance(model, nn.Module):
            raise Refused(f"save_keras_model: expected a torch module, got {type(model).__name__}")
        if example_inputs is None:
            raise Refused(
                f"save_keras_model: a {type(model).__name__} written in torch is read by tracing "
                "its forward: pass example_inputs=(x, ...)"
            )
        trace.save_torch_as_keras(
            model, path, tuple(example_inputs), keras2=keras2, overwrite=overwrite
        )
        return path
    if keras2:
        raise Refused("save_keras_model: keras2=True is for models written in torch")
    ext = _ext(path)
    if model.keras_version == 2 and ext in KERAS_OUT_EXTS:
        _check_keras3_formulas(model)
    if ext in KERAS_OUT_EXTS:
        files.write_keras(path, model.keras_config(), model.keras_weights())
    elif ext in TORCH_EXTS:
        sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        arch = {
            "format": ARCH_FORMAT,
            "version": 2,
            "keras_version": str(model.keras_version),
            "keras_config": model.keras_config(),
        }
        files.write_torch_file(path, sd, arch)
    else:
        raise Refused(
            f"{path}: unknown output format; use .keras, .weights.h5, .safetensors or .pt"
        )
    return path


def _activations(v) -> set:
    """Every activation an entry names (wrapped layers' and cells' included)."""
    if isinstance(v, dict):
        found = {w for k, w in v.items() if k.endswith("activation") and isinstance(w, str)}
        return found.union(*(_activations(w) for w in v.values()))
    if isinstance(v, list):
        return set().union(*(_activations(w) for w in v))
    return set()


def _check_keras3_formulas(model: PortedModel) -> None:
    """A Keras 2 hard_sigmoid has no Keras 3 twin: refuse rather than write another formula."""
    for b in model.layers:
        if "hard_sigmoid" in _activations(b.keras_entry()):
            raise Refused(
                f"{b.keras_class} {b.keras_name!r}: Keras 2's hard_sigmoid (clip(0.2x + 0.5)) differs from "
                "Keras 3's (relu6(x + 3) / 6); it cannot be written as a Keras 3 file"
            )
