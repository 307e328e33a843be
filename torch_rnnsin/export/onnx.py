"""ONNX export that keeps the state (the ``export`` command's library).

ONNX Runtime keeps nothing between calls, so the recurrent state is part of the graph:

    inputs   x (B, T, F) (several inputs: Keras's names, in its order; int and bool inputs
             kept as such), state_in_0 .. state_in_{k-1}     (B, H_k) each, zeros = fresh start
    outputs  y (or y_0, y_1, ...),  state_out_0 .. state_out_{k-1}

with B and T free (unless the Keras model fixes them). Feeding ``state_out_*`` back as ``state_in_*`` continues the same
sequences, one step or one chunk at a time. The state tensors are the model's flat list
(SimpleRNN / GRU: h; LSTM: h then c; layer order). Models that are not streamable
(Bidirectional, go_backwards, or a layer mixing time steps such as a Conv1D over time: see
``PortedModel.streamable``) have no state to carry: their graph has ``x`` only.

The graph comes from torch's TorchScript exporter, which turns ``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU`` into ONNX's RNN / LSTM / GRU ops (one op per layer, any T). Our own cells
(``OwnRNN``: other activations, GRU with ``reset_after=False``) become the same ops with their
``activations`` (Relu, HardSigmoid with Keras 2's or Keras 3's slope, Elu, ...) and
``linear_before_reset``, which is that maths; a cell ONNX has no activation for is refused
in one line.

A masked recurrence (Embedding(mask_zero=True), Masking, a bool ``mask=`` input; forwards,
go_backwards or Bidirectional) has no ONNX op: ONNX's recurrent ops have no per-step mask. While
exporting, each cell's masked branch (a Python loop, which tracing would unroll to the traced
T) runs instead as a TorchScript function compiled for the cell (``masked_script``), the same
maths from the cell's weights with Keras's rule (a masked step keeps the state and repeats the
previous output, zeros before the first valid step); the exporter writes it as one ONNX
``Loop`` over a free T. Bool masks stay bool inputs; the state is carried as without a mask.
ConvLSTM1D/2D's time loop (``ConvLSTM.steps``, masked or not) is swapped the same way
(``conv_loops``): the input's convolution over all steps stays outside, the recurrent
convolution and the gates are the Loop's body; its state is h then c, (B, *S', F) maps.
The weights are the traced graph's inputs (the exporter holds no copy of them); the file is
that graph, then each weight appended from its array as an initializer (``write_streamed``),
in torch's layout with the gate reordering as small ops that onnxruntime folds on loading.
Every graph is checked in onnxruntime (fed the model's arrays) against torch before its file
is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.atomic import atomic_path, check_new_file
from ..common.errors import TOLERANCE, Refused, one_line
from ..port.kinds.convlstm import ConvLSTM
from ..port.kinds.recurrent import Cell, OwnRNN
from ..port.model import TensorSpec, check_finite_weights
from . import DEFAULT_OPSET, OPSETS

try:  # the 'onnx' extra: without it, require_onnx() refuses in one line
    import onnx
    import onnxruntime as ort
except ImportError:
    onnx = ort = None


class OnnxMissingError(ImportError, Refused):
    """onnx or onnxruntime is not installed (a Refused too, so the CLI prints one line)."""


# --- the export ----------------------------------------------------------------


def require_onnx() -> None:
    for name in ("onnx", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            raise OnnxMissingError(
                f"ONNX export needs the '{name}' package; install the 'onnx' extra: "
                "pip install 'torch_rnnsin[onnx]'",
                name=name,
            ) from None


def check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise Refused(f"opset {opset}: supported {OPSETS.start}..{OPSETS.stop - 1}")


def export_onnx(model, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as an ONNX graph with the state as inputs and outputs (see the module
    docstring); checked in onnxruntime against torch (<= 1e-5) before the file appears.

    ``model`` is the lesson's ``SinRNN`` or a ported model (``state_sizes``, ``streamable``,
    ``forward(x, state=None, return_state=False)``). Returns the path written."""
    path = Path(path)
    check_new_file(path, "export")
    check_opset(opset)
    require_onnx()
    if not isinstance(model, torch.nn.Module):
        raise Refused(f"model: expected a torch nn.Module, got {type(model).__name__}")
    dtypes = sorted({str(p.dtype) for p in model.parameters()} - {"torch.float32"})
    if dtypes:
        raise Refused(f"model: parameters must be float32, got {dtypes}; use model.float()")
    check_finite_weights(model, str(path))
    # The model itself, in eval mode for the export (no deep copy of its weights): the
    # caller's mode is restored after, and its weights are only read. The exporter sees
    # them as graph inputs (``weightless_graph``); the file is that graph, then each weight
    # appended from its array (``write_streamed``); the check feeds the arrays to
    # onnxruntime. Nothing holds a second copy of the weights (peak: about 1 W above the
    # model). The file is renamed into place only if all passes (a writer that won the
    # race meanwhile is kept).
    was_training = model.training
    graph = streaming(model.eval())
    xs, states = graph.example(batch=2, length=3)
    with atomic_path(path, replace=False) as tmp:  # removed unless everything passes
        try:
            with torch.no_grad():
                outputs = graph(*xs, *states)
            graph.refuse_activations()
            n_y = len(outputs) - len(states)
            y_names = ["y"] if n_y == 1 else [f"y_{i}" for i in range(n_y)]
            in_names = graph.names + [f"state_in_{k}" for k in range(len(states))]
            out_names = y_names + [f"state_out_{k}" for k in range(len(states))]
            axes = dict(graph.input_axes())
            for name, y in zip(y_names, outputs, strict=False):
                axes[name] = graph.output_axes(y)
            for name in in_names[len(xs) :] + out_names[n_y:]:
                axes[name] = {0: "batch"}
            del outputs
            names = {"input_names": in_names, "output_names": out_names, "dynamic_axes": axes}
            weights = graph_weights(graph)
            try:
                with quiet_exporter(), own_cells(model), masked_loops(model):
                    header = weightless_graph(graph, (*xs, *states), weights, opset, **names)
            except Exception as e:  # any exporter failure: one line, nothing written
                raise Refused(
                    f"{graph.kind}: torch's ONNX exporter failed ({one_line(e)})"
                ) from None
        finally:
            model.train(was_training)
        onnx.helper.set_model_props(header, graph.metadata())
        with open(tmp, "wb") as f:  # the graph, then each weight as its own appended message
            write_streamed(f, header, weights)
        # onnx's checker: the graph (its weights as inputs), and the whole file where it is
        # small (the checker reads a file into memory twice: 2 W more for a large model,
        # whose file is the same graph and the weights framed by write_streamed)
        onnx.checker.check_model(header)
        if sum(a.nbytes for a in weights.values()) <= WHOLE_FILE_CHECK:
            # a name that is not UTF-8 (bytes kept as surrogates) cannot reach onnx's C++:
            # it gets the file's bytes instead
            try:
                onnx.checker.check_model(str(tmp).encode("utf-8") and str(tmp))
            except UnicodeEncodeError:
                onnx.checker.check_model(tmp.read_bytes())
        run = session(header, weights)  # the same graph, the weights fed as inputs
        del header
        worst = check_against_torch(graph, run)
        del run
        if worst == float("inf"):
            raise Refused(
                f"{graph.kind}: the ONNX graph gives other shapes than torch at other batch "
                "sizes or lengths (a layer loops over time in Python, traced at one length: "
                f"{graph.loops() or 'see inspect'}); not written"
            )
        if worst > TOLERANCE:
            raise Refused(
                f"{graph.kind}: the ONNX graph differs from torch by {worst:.2e} "
                f"(> {TOLERANCE:g}); not written"
            )
        if not graph.streamable:
            warnings.warn(
                f"{graph.kind}: no state to carry ({graph.why()}): exported without state "
                "inputs (every call reads its whole sequence from the zero state)",
                UserWarning,
                stacklevel=2,
            )
    return path


# --- the file: the graph without its weights, then each weight appended -----------------


def graph_weights(graph: nn.Module) -> dict[str, np.ndarray]:
    """The graph's parameters and buffers by name, as numpy views (not copies)."""
    tensors = {**dict(graph.named_parameters()), **dict(graph.named_buffers())}
    return {name: t.detach().numpy() for name, t in tensors.items()}


class Weightless(nn.Module):
    """``graph`` with its weights as inputs after its own: ``(*args, *weights)``; traced,
    the weights are graph inputs, so the exporter holds no copy of them (its shape
    inference and constant folding copy every initializer) and their transforms (gate
    order, transposes) stay small ops in the graph, which onnxruntime folds when it loads."""

    def __init__(self, graph: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.graph = (graph,)  # not a submodule: its weights are not the trace's state
        self.names = names

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = len(args) - len(self.names)
        with swapped(self.graph[0], dict(zip(self.names, args[n:], strict=True))):
            return self.graph[0](*args[:n])


@contextlib.contextmanager
def swapped(module: nn.Module, tensors: dict[str, torch.Tensor]):
    """``module``'s parameters and buffers (shared ones under every name) are ``tensors``
    (by ``named_parameters`` / ``named_buffers`` name) until the block ends. (torch's
    functional_call refuses to run under the tracer.)"""
    owners = {id(t): name for name, t in (*module.named_parameters(), *module.named_buffers())}
    slots = []
    for _, sub in module.named_modules(remove_duplicate=False):
        for store in (sub._parameters, sub._buffers):
            for key, t in store.items():
                if t is not None and owners.get(id(t)) in tensors:
                    slots.append((store, key, t))
    try:
        for store, key, t in slots:
            store[key] = tensors[owners[id(t)]]
        yield
    finally:
        for store, key, t in slots:
            store[key] = t


def weightless_graph(
    graph: nn.Module, args: tuple, weights: dict[str, np.ndarray], opset: int, **names
) -> onnx.ModelProto:
    """The exported graph with the weights as its last inputs (named as in ``weights``)."""
    f = io.BytesIO()
    torch.onnx.export(
        Weightless(graph, list(weights)),
        (*args, *(torch.from_numpy(a) for a in weights.values())),
        f,
        input_names=names["input_names"] + list(weights),
        output_names=names["output_names"],
        dynamic_axes=names["dynamic_axes"],
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False,
    )
    return onnx.load_from_string(f.getvalue())


def write_streamed(f, header: onnx.ModelProto, weights: dict[str, np.ndarray]) -> None:
    """``header`` without the weights among its inputs, then each weight it uses as its own
    serialized ``ModelProto(graph=GraphProto(initializer=[tensor]))``: protobuf merges
    concatenated messages (repeated fields append), so the file parses as one model whose
    initializers are the weights; each weight's bytes go from its array to the file."""
    used = {v.name for v in header.graph.input} & set(weights)
    head = onnx.ModelProto()
    head.CopyFrom(header)
    kept = [v for v in head.graph.input if v.name not in used]
    del head.graph.input[:]
    head.graph.input.extend(kept)
    f.write(head.SerializeToString())
    for name in (n for n in weights if n in used):
        a = np.ascontiguousarray(weights[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)  # raw_data is little-endian
        tensor = onnx.TensorProto(name=name, dims=a.shape)
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(a.dtype)
        raw = memoryview(a).cast("B")  # (nbytes,)
        body = tensor.SerializeToString() + _field(TENSOR_RAW_DATA, raw.nbytes)
        # ModelProto.graph { GraphProto.initializer { TensorProto ... raw_data } }
        inner = _field(GRAPH_INITIALIZER, len(body) + raw.nbytes)
        f.write(_field(MODEL_GRAPH, len(inner) + len(body) + raw.nbytes) + inner + body)
        f.write(raw)


WHOLE_FILE_CHECK = 32 << 20  # bytes of weights up to which onnx's checker reads the file

MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA = 7, 5, 9  # onnx.proto's field numbers


def _field(number: int, length: int) -> bytes:
    """A length-delimited field's key and length (protobuf's wire format)."""
    return _varint(number << 3 | 2) + _varint(length)


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append(v & 0x7F | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def session(header: onnx.ModelProto, weights: dict[str, np.ndarray]):
    """``run(feed) -> outputs``: an onnxruntime session of the written graph with the
    weights as inputs, fed the model's own arrays (no copy of them is loaded; the
    per-call transforms of the weights are freed after each call)."""
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False  # (both keep a call's peak for the next: +1 W)
    # the graph's order: each layer's weight transforms just before its op (the default
    # order can run them all first: +1 W)
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    sess = ort.InferenceSession(
        header.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    own = {v.name for v in sess.get_inputs()} & set(weights)

    def run(feed: dict[str, np.ndarray]) -> list:
        return sess.run(None, {**feed, **{name: weights[name] for name in own}})

    return run


class Streaming(nn.Module):
    """``(*xs, *states) -> (*ys, *states)``: the graph's signature around a model with the
    ported models' interface (``inputs``, ``state_sizes``, ``streamable``,
    ``forward(*xs, state=None, return_state=False)``; the lesson's ``SinRNN`` has it too,
    with one float input)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        missing = [a for a in ("state_sizes", "streamable") if not hasattr(model, a)]
        if missing:
            raise Refused(
                f"{type(model).__name__}: not a SinRNN or a ported model (no "
                f"{', '.join(missing)}); load it with load_keras_model"
            )
        self.kind = type(model).__name__
        self.streamable = bool(model.streamable)
        self.sizes = [int(h) for h in model.state_sizes] if self.streamable else []
        shapes = getattr(model, "state_shapes", None)
        self.shapes = (
            [tuple(s) for s in shapes] if shapes is not None else [(h,) for h in self.sizes]
        )
        self.shapes = self.shapes if self.streamable else []
        self.specs = input_specs(model)
        names = [s.name for s in self.specs]
        self.names = ["x"] if len(names) == 1 else [_onnx_name(n, i) for i, n in enumerate(names)]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xs, states = args[: len(self.specs)], list(args[len(self.specs) :])
        if not self.streamable:
            ys = self.model(*xs)
            return tuple(ys) if isinstance(ys, list | tuple) else (ys,)
        ys, new = self.model(*xs, state=states, return_state=True)
        ys = tuple(ys) if isinstance(ys, list | tuple) else (ys,)
        return (*ys, *new)

    def example(self, batch: int, length: int, seed: int = 0) -> tuple[list, list]:
        """Inputs the model takes (float in [-1, 1], int ids in range, bool masks) at this
        batch and length (where the model leaves them free), and states in [-0.5, 0.5]."""
        g = torch.Generator().manual_seed(seed)
        xs = []
        for s in self.specs:
            shape = [s.shape[0] or batch] + [length if d is None else d for d in s.shape[1:]]
            if s.dtype == "bool":
                x = torch.rand(shape, generator=g) < 0.7
                x[:, 0] = True
            elif s.dtype.startswith("int"):
                dtype = torch.int32 if s.dtype == "int32" else torch.int64
                x = torch.randint(0, s.high or 10, shape, generator=g, dtype=dtype)
            else:
                x = torch.rand(shape, generator=g) * 2 - 1
            xs.append(x)
        B = xs[0].shape[0]
        return xs, [torch.rand(B, *shape, generator=g) - 0.5 for shape in self.shapes]

    def input_axes(self) -> dict[str, dict[int, str]]:
        """Free sizes stay free: the batch, the time axis, any other unsized axis."""
        out = {}
        for name, s in zip(self.names, self.specs, strict=True):
            names = {0: "batch", 1: "time"}
            out[name] = {i: names.get(i, f"{name}_{i}") for i, d in enumerate(s.shape) if d is None}
        return out

    def output_axes(self, y: torch.Tensor) -> dict[int, str]:
        free_time = any(len(s.shape) > 1 and s.shape[1] is None for s in self.specs)
        axes = {0: "batch"} if self.specs[0].shape[0] is None else {}
        if y.dim() >= 3 and free_time and y.shape[1] == 3:  # traced at length 3: the time axis
            axes[1] = "time"
        return axes

    def refuse_activations(self) -> None:
        """A cell with an activation ONNX's recurrent ops (and our masked loop) do not have."""
        for m in self.model.modules():
            if isinstance(m, OwnRNN) and getattr(m, "onnx_activations", None) is None:
                raise Refused(
                    f"OwnRNN {m.kind}: an activation ONNX's recurrent ops do not have; not exported"
                )

    def loops(self) -> str:
        """The layers whose torch code loops over time in Python (``loops_in_python``) and
        that export has no scripted Loop for (``SCRIPTED_LOOPS``), by name."""
        names = [
            f"{b.keras_class} {b.keras_name!r}"
            for b in self.model.modules()
            if getattr(b, "loops_in_python", False) and not isinstance(b, SCRIPTED_LOOPS)
        ]
        return ", ".join(names)

    def why(self) -> str:
        """Why the model has no state to carry (the ported model names the layers)."""
        return getattr(self.model, "why_not_streamable", lambda: None)() or "no state to carry"

    def metadata(self) -> dict[str, str]:
        if self.streamable:
            state = "kept: feed state_out_<k> back as state_in_<k>; zeros start a sequence"
        else:
            state = f"none ({self.why()}): every call reads its whole sequence from the zero state"
        return {
            "torch_rnnsin.model": self.kind,
            "torch_rnnsin.state": state,
            "torch_rnnsin.state_sizes": ",".join(str(h) for h in self.sizes),
            "torch_rnnsin.state_shapes": ";".join(
                "x".join(str(d) for d in shape) for shape in self.shapes
            ),
        }


def _onnx_name(name: str, i: int) -> str:
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return clean if clean and not clean[0].isdigit() else f"x{i}"


def streaming(model: nn.Module) -> Streaming:
    """``model`` wrapped with the graph's signature ``(*xs, *states) -> (*ys, *states)``."""
    return Streaming(model)


def input_specs(model) -> list:
    """A ported model's input specs; the lesson's SinRNN: one float (B, T, input_size)."""
    if hasattr(model, "inputs"):
        return list(model.inputs)
    size = getattr(model, "input_size", None)
    for m in model.modules():  # else the first recurrent module's
        if size is None and isinstance(getattr(m, "input_size", None), int):
            size = m.input_size
    if size is None:
        raise Refused(f"{type(model).__name__}: no inputs to export (no .inputs, no .input_size)")
    return [TensorSpec("x", (None, None, int(size)), "float32")]


def check_against_torch(graph: Streaming, run) -> float:
    """Largest |onnx - torch| (relative above 1) on shapes other than the traced one:
    batch 1 and 3, lengths 1 and 7 (where the model leaves them free). ``run``: the ONNX
    graph's ``feed -> outputs`` (``session``)."""
    worst = 0.0
    for seed, (batch, length) in enumerate([(3, 7), (1, 1)], start=1):
        xs, states = graph.example(batch, length, seed)
        with torch.no_grad():
            ref = [t.numpy() for t in graph(*xs, *states)]
        feed = {n: x.numpy() for n, x in zip(graph.names, xs, strict=True)}
        feed.update({f"state_in_{k}": s.numpy() for k, s in enumerate(states)})
        for a, b in zip(run(feed), ref, strict=True):
            if a.shape != b.shape:
                return float("inf")
            d = np.abs(a.astype(np.float64) - b) / np.maximum(1, np.abs(b))
            worst = max(worst, float(np.nan_to_num(d, nan=np.inf).max(initial=0)))
    return worst


@contextlib.contextmanager
def quiet_exporter():
    """The TorchScript exporter's notices (its deprecation, tracing of nn.RNN's own shape
    checks, batch-size hints for packed sequences) say nothing about this graph, which
    ``check_against_torch`` tests on other shapes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*(legacy TorchScript|will be removed).*")
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        yield


@contextlib.contextmanager
def own_cells(model):
    """While exporting, each of our own cells (``OwnRNN``) runs as one ONNX RNN / LSTM / GRU
    op with its activations instead of its Python loop over time."""
    cells = [m for m in model.modules() if isinstance(m, OwnRNN)]
    for cell in cells:
        cell.forward = lambda x, hx=None, cell=cell: _own_apply(cell, x, hx)
    try:
        yield
    finally:
        for cell in cells:
            del cell.forward  # the class's own forward again


def _own_apply(cell: OwnRNN, x: torch.Tensor, hx):
    """The cell's call through ``OwnRNNOp`` (flat tensors in and out), as nn.RNN/LSTM/GRU's."""
    lstm = cell.kind == "LSTM"
    h0, c0 = (hx if hx is not None else (None, None)) if lstm else (hx, None)
    rows = (cell.weight_ih_l0, cell.weight_hh_l0, cell.bias_ih_l0, cell.bias_hh_l0)
    outs = OwnRNNOp.apply(x, h0, c0, cell, *rows)
    return (outs[0], (outs[1], outs[2])) if lstm else (outs[0], outs[1])


class OwnRNNOp(torch.autograd.Function):
    """An autograd Function whose ONNX form is the recurrent op; its torch form is the cell's
    own loop (run while tracing, so the traced values are the cell's)."""

    @staticmethod
    def forward(ctx, x, h0, c0, cell, *rows):  # x (B, T, F); h0, c0 (1, B, H) or None
        # W, U and the biases (or None) are inputs so that the graph takes them from its own.
        lstm = cell.kind == "LSTM"
        hx = ((h0, c0) if h0 is not None else None) if lstm else h0
        out, hn = type(cell).forward(cell, x, hx)
        return (out, *hn) if lstm else (out, hn)

    @staticmethod
    def symbolic(g, x, h0, c0, cell, *rows):
        return own_rnn_onnx(g, x, h0, c0, cell, *rows)


# torch rows -> ONNX's gate order: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h
ONNX_ORDER = {"SimpleRNN": [0], "LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2]}
ONNX_OP = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def own_rnn_onnx(g, x, h0, c0, cell: OwnRNN, w_ih, w_hh, b_ih, b_hh):
    """ONNX's RNN / LSTM / GRU from the cell's nn.RNN-style rows (graph values: the weights
    stay the graph's inputs): W, R and the biases in ONNX's gate order (a Gather of rows),
    the cell's activations, GRU: linear_before_reset = reset_after."""
    H, kind = cell.hidden_size, cell.kind
    order = ONNX_ORDER[kind]
    index = torch.cat([torch.arange(i * H, (i + 1) * H) for i in order])  # (kH,)
    rows = g.op("Constant", value_t=index)

    def onnx_rows(t, shape: list[int]):
        if t is None or _is_none(t):
            return g.op("Constant", value_t=torch.zeros(shape))
        gathered = g.op("Gather", t, rows, axis_i=0)
        return g.op("Reshape", gathered, g.op("Constant", value_t=torch.tensor(shape)))

    kH = len(order) * H
    W = onnx_rows(w_ih, [1, kH, cell.input_size])  # (1, kH, F)
    R = onnx_rows(w_hh, [1, kH, H])  # (1, kH, H)
    B = g.op("Concat", onnx_rows(b_ih, [1, kH]), onnx_rows(b_hh, [1, kH]), axis_i=1)  # (1, 2kH)
    none = g.op("prim::Constant")
    none.setType(torch._C.OptionalType.ofTensor())  # an omitted optional input
    acts = cell.onnx_activations
    attrs = {
        "hidden_size_i": H,
        "activations_s": [a[0] for a in acts],
        "activation_alpha_f": [v for a in acts for v in a[1:2]],
        "activation_beta_f": [v for a in acts for v in a[2:3]],
    }
    attrs = {k: v for k, v in attrs.items() if v != []}
    if kind == "GRU":
        attrs["linear_before_reset_i"] = int(cell.reset_after)
    xt = g.op("Transpose", x, perm_i=[1, 0, 2])  # (T, B, F)
    h0 = none if h0 is None or _is_none(h0) else h0
    c0 = none if c0 is None or _is_none(c0) else c0
    axis1 = g.op("Constant", value_t=torch.tensor([1]))
    if kind == "LSTM":
        y, h_n, c_n = g.op("LSTM", xt, W, R, B, none, h0, c0, outputs=3, **attrs)
        y = g.op("Transpose", g.op("Squeeze", y, axis1), perm_i=[1, 0, 2])  # (B, T, H)
        return y, h_n, c_n
    y, h_n = g.op(ONNX_OP[kind], xt, W, R, B, none, h0, outputs=2, **attrs)
    y = g.op("Transpose", g.op("Squeeze", y, axis1), perm_i=[1, 0, 2])  # (B, T, H)
    return y, h_n


def _is_none(value) -> bool:
    """A traced None (prim::Constant of type None)."""
    node = getattr(value, "node", lambda: None)()
    return node is not None and node.mustBeNone()


# --- masked recurrences: one ONNX Loop over the free time axis ------------------

# Keras activation -> TorchScript expression of v (the same set as ONNX_ACTS, hard_sigmoid by
# the file's Keras major), as port/kinds/activations.py computes it.
SCRIPT_ACTS = {
    "tanh": "torch.tanh({v})",
    "sigmoid": "torch.sigmoid({v})",
    "relu": "torch.relu({v})",
    "linear": "({v})",
    "elu": "torch.nn.functional.elu({v})",
    "softsign": "({v}) / (1.0 + torch.abs({v}))",
    "softplus": "torch.nn.functional.softplus({v})",
    "hard_sigmoid/2": "torch.clamp(0.2 * ({v}) + 0.5, 0.0, 1.0)",
    "hard_sigmoid/3": "torch.clamp(({v}) + 3.0, 0.0, 6.0) / 6.0",
}

# One step of each cell from x = the projected input (B, kH) with its bias, h, c (B, H), the
# recurrent rows U (kH, H) and bias bh (kH,) in torch's gate order: h2, c2 (OwnRNN.step's maths).
SCRIPT_STEPS = {
    "SimpleRNN": """
        h2 = ACT(x + torch.matmul(h, U.t()) + bh)
        c2 = c""",
    "LSTM": """
        a = x + torch.matmul(h, U.t()) + bh
        c2 = REC(a[:, H:2 * H]) * c + REC(a[:, 0:H]) * ACT(a[:, 2 * H:3 * H])
        h2 = REC(a[:, 3 * H:4 * H]) * ACT(c2)""",
    "GRU/after": """
        a = torch.matmul(h, U.t()) + bh
        r = REC(x[:, 0:H] + a[:, 0:H])
        z = REC(x[:, H:2 * H] + a[:, H:2 * H])
        n = ACT(x[:, 2 * H:3 * H] + r * a[:, 2 * H:3 * H])
        h2 = z * h + (1.0 - z) * n
        c2 = c""",
    "GRU/before": """
        r = REC(x[:, 0:H] + torch.matmul(h, U[0:H].t()) + bh[0:H])
        z = REC(x[:, H:2 * H] + torch.matmul(h, U[H:2 * H].t()) + bh[H:2 * H])
        n = ACT(x[:, 2 * H:3 * H] + torch.matmul(r * h, U[2 * H:3 * H].t()) + bh[2 * H:3 * H])
        h2 = z * h + (1.0 - z) * n
        c2 = c""",
}

SCRIPT_LOOP = """
def masked_loop(gi: Tensor, mask: Tensor, h: Tensor, c: Tensor, U: Tensor, bh: Tensor):
    # gi (B, T, kH), mask (B, T) bool, h, c (B, H) -> outputs (B, T, H), h, c
    H = h.size(1)
    prev = torch.zeros_like(h)
    outs: List[Tensor] = []
    for t in range(gi.size(1)):
        x = gi[:, t]
        m = mask[:, t].unsqueeze(1)
STEP
        h = torch.where(m, h2, h)
        c = torch.where(m, c2, c)
        prev = torch.where(m, h2, prev)
        outs.append(prev)
    return torch.stack(outs, 1), h, c
"""

_compiled: dict[tuple, object] = {}


def masked_script(cell: Cell):
    """The cell's masked recurrence as a TorchScript function (ONNX: one Loop, T free);
    Keras's rule: a masked step keeps the state and repeats the previous output (zeros
    before the first valid step)."""
    o = cell.options
    step = cell.kind if cell.kind != "GRU" else f"GRU/{'after' if o['reset_after'] else 'before'}"
    names = [o["activation"], o.get("recurrent_activation", "sigmoid")]
    exprs = [SCRIPT_ACTS.get(f"{n}/{cell.keras}", SCRIPT_ACTS.get(n)) for n in names]
    if None in exprs:
        raise Refused(
            f"{cell.kind}: activation {names} in a masked recurrence has no exported form"
        )
    key = (step, *exprs)
    if key not in _compiled:
        body = SCRIPT_STEPS[step]
        for fn, expr in (("ACT", exprs[0]), ("REC", exprs[1])):
            body = _substitute(body, fn, expr)
        src = SCRIPT_LOOP.replace("STEP", body.strip("\n"))
        _compiled[key] = torch.jit.CompilationUnit(src).masked_loop
    return _compiled[key]


def _substitute(body: str, fn: str, expr: str) -> str:
    """Each ``fn(arg)`` in ``body`` (args without nested calls' parentheses) -> expr of arg."""
    out, i = [], 0
    while (j := body.find(fn + "(", i)) >= 0:
        k, depth = j + len(fn) + 1, 1
        while depth:
            depth += {"(": 1, ")": -1}.get(body[k], 0)
            k += 1
        out += [body[i:j], expr.format(v=body[j + len(fn) + 1 : k - 1])]
        i = k
    return "".join(out) + body[i:]


def masked_run(cell: Cell, x: torch.Tensor, state: list | None, mask: torch.Tensor | None):
    """``Cell.run`` with its masked branch as the scripted loop (export only)."""
    if mask is None:
        return type(cell).run(cell, x, state, None)
    rnn, B = cell.rnn, x.shape[0]
    gi = nn.functional.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)  # (B, T, kH)
    U = rnn.weight_hh_l0  # (kH, H)
    bh = rnn.bias_hh_l0 if rnn.bias_hh_l0 is not None else U.new_zeros(U.shape[0])
    zero = x.new_zeros(B, cell.hidden)  # (B, H)
    h = zero if state is None else state[0]
    c = state[1] if state is not None and cell.kind == "LSTM" else zero
    out, h, c = masked_script(cell)(gi, mask.to(torch.bool), h, c, U, bh)
    return out, ([h, c] if cell.kind == "LSTM" else [h])


@contextlib.contextmanager
def masked_loops(model):
    """While exporting, a masked recurrence runs as a TorchScript loop (one ONNX Loop over
    a free T) instead of ``Cell.run``'s Python loop, which the tracer unrolls; so does every
    ConvLSTM's time loop, masked or not (``conv_loops``)."""
    cells = [m for m in model.modules() if isinstance(m, Cell)]
    for cell in cells:
        cell.run = lambda x, state, mask, cell=cell: masked_run(cell, x, state, mask)
    try:
        with conv_loops(model):  # ConvLSTM's loop too (below)
            yield
    finally:
        for cell in cells:
            del cell.run


# --- ConvLSTM: its time loop as one ONNX Loop over the free time axis ---------------

# Elementwise Keras activations -> TorchScript, as port/kinds/activations.py computes them.
CONV_ACTS = {
    **SCRIPT_ACTS,
    "relu6": "torch.nn.functional.relu6({v})",
    "selu": "torch.nn.functional.selu({v})",
    "celu": "torch.nn.functional.celu({v})",
    "swish": "torch.nn.functional.silu({v})",
    "silu": "torch.nn.functional.silu({v})",
    "gelu": "torch.nn.functional.gelu({v})",
    "exponential": "torch.exp({v})",
    "hard_silu/3": "({v}) * (torch.nn.functional.relu6(({v}) + 3.0) / 6.0)",
    "hard_swish/3": "({v}) * (torch.nn.functional.relu6(({v}) + 3.0) / 6.0)",
    "hard_tanh": "torch.clamp({v}, -1.0, 1.0)",
    "leaky_relu": "torch.nn.functional.leaky_relu({v}, 0.2)",
    "mish": "({v}) * torch.tanh(torch.nn.functional.softplus({v}))",
    "log_sigmoid": "-torch.nn.functional.softplus(-({v}))",  # ONNX's Log(Sigmoid) is inexact
    "tanh_shrink": "({v}) - torch.tanh({v})",
    "soft_shrink": "torch.nn.functional.softshrink({v}, 0.5)",
    "hard_shrink": "torch.nn.functional.hardshrink({v}, 0.5)",
    "squareplus": "(({v}) + torch.sqrt(({v}) * ({v}) + 4.0)) / 2.0",
    "sparse_sigmoid": "torch.clamp(0.5 * (({v}) + 1.0), 0.0, 1.0)",
    "sparse_plus": "torch.where(({v}) <= -1.0, torch.zeros_like({v}), "
    "torch.where(({v}) >= 1.0, {v}, (({v}) + 1.0) ** 2 / 4.0))",
}

# ConvLSTM.steps in TorchScript: xs (B, T, 4F, *S') the input's convolution with its bias,
# mask (B, T) bool, h, c (B, F, *S'), W (4F, F, *K) the recurrent kernel ("same", stride 1:
# padded by PADS, TensorFlow's and torch's split) -> outputs (B, T, F, *S') (or the last
# output again when the layer returns no sequence), the last output, h, c.
CONV_LOOP = """
def conv_loop(xs: Tensor, mask: Tensor, h: Tensor, c: Tensor, W: Tensor):
    F = h.size(1)
    prev = torch.zeros_like(h)
    outs: List[Tensor] = []
    for t in range(xs.size(1)):
        z = xs[:, t] + torch.convRANKd(PAD(h), W)
        c2 = REC(z[:, F:2 * F]) * c + REC(z[:, 0:F]) * ACT(z[:, 2 * F:3 * F])
        h2 = REC(z[:, 3 * F:4 * F]) * ACT(c2)
UPDATE
SEQ
    return OUTS, prev, h, c
"""
CONV_UPDATE = {
    False: """        h = h2
        c = c2
        prev = h2""",
    True: """        m = mask[:, t]UNSQUEEZE
        h = torch.where(m, h2, h)
        c = torch.where(m, c2, c)
        prev = torch.where(m, h2, prev)""",
}


def conv_script(block: ConvLSTM, masked: bool, seq: bool):
    """The block's time loop as a TorchScript function (ONNX: one Loop, T free)."""
    names = [block.o["activation"], block.o["recurrent_activation"]]
    exprs = [CONV_ACTS.get(f"{n}/{block.keras}", CONV_ACTS.get(n)) for n in names]
    for option, name, expr in zip(
        ("activation", "recurrent_activation"), names, exprs, strict=True
    ):
        if expr is None:
            raise Refused(
                f"{block.keras_class} {block.keras_name!r}: {option}={name!r} has no exported "
                "form in the ONNX loop (elementwise activations only)"
            )
    k = block.h_conv.kernel_size
    pads = [p for d in reversed(k) for p in ((d - 1) // 2, d - 1 - (d - 1) // 2)]
    pad = f"torch.nn.functional.pad({{v}}, {pads})" if any(pads) else "{v}"
    key = (block.rank, tuple(pads), *exprs, masked, seq)
    if key not in _compiled:
        body = CONV_LOOP.replace("UPDATE", CONV_UPDATE[masked])
        body = body.replace("UNSQUEEZE", ".unsqueeze(-1)" * (block.rank + 1))
        body = body.replace("SEQ", "        outs.append(prev)" if seq else "")
        body = body.replace("OUTS", "torch.stack(outs, 1)" if seq else "prev")
        body = body.replace("RANK", str(block.rank))
        for name, expr in (("ACT", exprs[0]), ("REC", exprs[1]), ("PAD", pad)):
            body = _substitute(body, name, f"({expr})")  # whole: "a - b" * c
        _compiled[key] = torch.jit.CompilationUnit(body).conv_loop
    return _compiled[key]


def conv_steps(block: ConvLSTM, xs, h, c, mask, seq: bool):
    """``ConvLSTM.steps`` as the scripted loop (export only)."""
    loop = conv_script(block, mask is not None, seq)
    m = mask.to(torch.bool) if mask is not None else xs.new_ones(1, 1, dtype=torch.bool)
    outs, last, h, c = loop(xs, m, h, c, block.h_conv.weight)
    return (outs if seq else None), last, h, c


SCRIPTED_LOOPS = (ConvLSTM,)  # the Python time loops export swaps for a scripted Loop


@contextlib.contextmanager
def conv_loops(model):
    """While exporting, each ConvLSTM's time loop runs as a TorchScript loop (one ONNX Loop
    over a free T) instead of ``ConvLSTM.steps``'s Python loop, which the tracer unrolls;
    an activation the loop has no form for is refused here, in one line."""
    blocks = [m for m in model.modules() if isinstance(m, ConvLSTM)]
    for b in blocks:
        conv_script(b, False, b.flags["return_sequences"])  # refuse before tracing
    for b in blocks:
        b.steps = lambda xs, h, c, mask, seq, b=b: conv_steps(b, xs, h, c, mask, seq)
    try:
        with warnings.catch_warnings():  # the loop body's slices: not folded, still exact
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            yield
    finally:
        for b in blocks:
            del b.steps


def describe(path: str | os.PathLike) -> str:
    """What a written file takes and gives, e.g. ``x [batch, time, 1]``, and its state note."""
    proto = onnx.load(str(path))

    def shape(v) -> str:
        dims = [d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim]
        return f"{v.name} [{', '.join(dims)}]"

    meta = {p.key: p.value for p in proto.metadata_props}
    return "\n".join(
        [
            f"wrote {path} (opset {proto.opset_import[0].version})",
            f"  inputs   {', '.join(shape(v) for v in proto.graph.input)}",
            f"  outputs  {', '.join(shape(v) for v in proto.graph.output)}",
            f"  state    {meta.get('torch_rnnsin.state', '?')}",
        ]
    )
