"""ONNX export that keeps the state (the ``export`` command's library).

ONNX Runtime keeps nothing between calls, so the recurrent state is part of the graph:

    inputs   x (B, T, F), state_in_0 .. state_in_{k-1}     (B, H_k) each, zeros = fresh start
    outputs  y (or y_0, y_1, ...),  state_out_0 .. state_out_{k-1}

with B and T free. Feeding ``state_out_*`` back as ``state_in_*`` continues the same
sequences, one step or one chunk at a time. The state tensors are the model's flat list
(SimpleRNN / GRU: h; LSTM: h then c; layer order). Bidirectional and go_backwards models
read the whole sequence at once and have no state to carry: their graph has ``x`` only.

The graph comes from torch's TorchScript exporter, which turns ``nn.RNN`` / ``nn.LSTM`` /
``nn.GRU`` into ONNX's RNN / LSTM / GRU ops (one op per layer, any T); a Keras GRU with
``reset_after=False`` becomes ONNX's GRU with ``linear_before_reset=0``, which is that maths.
Every file is checked in onnxruntime against torch before it is written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.atomic import atomic_path, check_new_file
from ..common.errors import TOLERANCE, Refused, one_line
from ..port.modules import GRUResetBefore
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
    # A CPU copy in eval mode: the caller's model is left as it was, wherever it was.
    graph = streaming(copy.deepcopy(model).cpu().eval())
    x, states = graph.example(batch=2, length=3)
    with torch.no_grad():
        outputs = graph(x, *states)
    n_y = len(outputs) - len(states)
    y_names = ["y"] if n_y == 1 else [f"y_{i}" for i in range(n_y)]
    in_names = ["x"] + [f"state_in_{k}" for k in range(len(states))]
    out_names = y_names + [f"state_out_{k}" for k in range(len(states))]
    axes = {"x": {0: "batch", 1: "time"}}
    for name, y in zip(y_names, outputs, strict=False):
        axes[name] = {0: "batch", 1: "time"} if y.dim() == 3 else {0: "batch"}
    for name in in_names[1:] + out_names[n_y:]:
        axes[name] = {0: "batch"}
    buf = io.BytesIO()
    try:
        with quiet_exporter(), custom_cells(graph.model):
            torch.onnx.export(
                graph,
                (x, *states),
                buf,
                input_names=in_names,
                output_names=out_names,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as e:  # any exporter failure: one line, nothing written
        raise Refused(f"{graph.kind}: torch's ONNX exporter failed ({one_line(e)})") from None
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, graph.metadata())
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    worst = check_against_torch(graph, data)
    if worst > TOLERANCE:
        raise Refused(
            f"{graph.kind}: the ONNX graph differs from torch by {worst:.2e} (> {TOLERANCE:g}); "
            "not written"
        )
    if not graph.streamable:
        warnings.warn(
            f"{graph.kind} has {graph.why()}: exported without state inputs (every call "
            "reads its whole sequence from the zero state)",
            UserWarning,
            stacklevel=2,
        )
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


class Streaming(nn.Module):
    """``(x, *states) -> (*ys, *states)``: the graph's signature around a model with the
    ported models' interface (``state_sizes``, ``streamable``,
    ``forward(x, state=None, return_state=False)``; the lesson's ``SinRNN`` has it too)."""

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
        self.features = input_features(model)
        self.stateless_layers = [
            f"{getattr(b, 'keras_class', type(b).__name__)} {getattr(b, 'keras_name', '')!r}"
            for b in getattr(model, "layers", [])
            if not getattr(b, "streamable", True)
        ]

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.streamable:
            ys = self.model(x)
            return tuple(ys) if isinstance(ys, list | tuple) else (ys,)
        ys, new = self.model(x, state=list(states), return_state=True)
        ys = tuple(ys) if isinstance(ys, list | tuple) else (ys,)
        return (*ys, *new)

    def example(
        self, batch: int, length: int, seed: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Random x (B, T, F) in [-1, 1] and states (B, H_k) in [-0.5, 0.5] (CPU)."""
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(batch, length, self.features, generator=g) * 2 - 1
        return x, [torch.rand(batch, h, generator=g) - 0.5 for h in self.sizes]

    def why(self) -> str:
        """Which layers have no state to carry (Bidirectional or go_backwards)."""
        named = f" ({', '.join(self.stateless_layers)})" if self.stateless_layers else ""
        return f"Bidirectional or go_backwards layers{named}"

    def metadata(self) -> dict[str, str]:
        if self.streamable:
            state = "kept: feed state_out_<k> back as state_in_<k>; zeros start a sequence"
        else:
            state = (
                f"none: {self.why()} read the whole sequence; every call starts from the zero state"
            )
        return {
            "torch_rnnsin.model": self.kind,
            "torch_rnnsin.state": state,
            "torch_rnnsin.state_sizes": ",".join(str(h) for h in self.sizes),
        }


def streaming(model: nn.Module) -> Streaming:
    """``model`` wrapped with the graph's signature ``(x, *states) -> (*ys, *states)``."""
    return Streaming(model)


def input_features(model) -> int:
    """F of a ported model: its ``input_shape`` (T, F), else its first recurrent layer's."""
    shape = getattr(model, "input_shape", None)
    if shape:
        return int(shape[-1])
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            return int(m.input_size)
        if hasattr(m, "input_size"):
            return int(m.input_size)
    raise Refused(f"{type(model).__name__}: no recurrent layer found to read F from")


def check_against_torch(graph, data: bytes) -> float:
    """Largest |onnx - torch| (relative above 1) on shapes other than the traced one:
    batch 1 and 3, lengths 1 and 7."""
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, (batch, length) in enumerate([(3, 7), (1, 1)], start=1):
        x, states = graph.example(batch, length, seed)
        with torch.no_grad():
            ref = [t.numpy() for t in graph(x, *states)]
        feed = {"x": x.numpy()}
        feed.update({f"state_in_{k}": s.numpy() for k, s in enumerate(states)})
        for a, b in zip(sess.run(None, feed), ref, strict=True):
            if a.shape != b.shape:
                return float("inf")
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(1, np.abs(b)), initial=0)))
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
def custom_cells(model):
    """While exporting, each reset-before GRU (Keras ``reset_after=False``) runs as one ONNX
    GRU op with ``linear_before_reset=0`` instead of its Python loop over time."""
    cells = [m for m in model.modules() if isinstance(m, GRUResetBefore)]
    apply = GRUResetBeforeOp.apply
    for cell in cells:
        cell.forward = lambda x, h0=None, cell=cell: apply(x, h0, cell, *cell.parameters())
    try:
        yield
    finally:
        for cell in cells:
            del cell.forward  # the class's own forward again


class GRUResetBeforeOp(torch.autograd.Function):
    """An autograd Function whose ONNX form is the GRU op; its torch form is the cell's own
    loop (run while tracing, so the traced values are the cell's)."""

    @staticmethod
    def forward(ctx, x, h0, cell, *parameters):  # x (B, T, F), h0 (1, B, H) or None
        # The parameters are inputs only so that the tracer knows them.
        return type(cell).forward(cell, x, h0)  # (B, T, H), (1, B, H)

    @staticmethod
    def symbolic(g, x, h0, cell, *parameters):
        return gru_reset_before_onnx(g, x, h0, cell)


def gru_reset_before_onnx(g, x, h0, cell):
    """ONNX's GRU (gates z, r, h; ``linear_before_reset=0``) from the cell's nn.GRU-style
    rows r, z, n: W = [W_z; W_r; W_n], R likewise, bias = [b_ih reordered; zeros]."""
    H = cell.hidden_size

    def zrn(t: torch.Tensor) -> torch.Tensor:  # rows r, z, n -> z, r, n
        r, z, n = t.detach().split(H)
        return torch.cat([z, r, n])

    b_ih = zrn(cell.bias_ih_l0) if cell.bias_ih_l0 is not None else torch.zeros(3 * H)
    W = g.op("Constant", value_t=zrn(cell.weight_ih_l0).unsqueeze(0))  # (1, 3H, F)
    R = g.op("Constant", value_t=zrn(cell.weight_hh_l0).unsqueeze(0))  # (1, 3H, H)
    B = g.op("Constant", value_t=torch.cat([b_ih, torch.zeros(3 * H)]).unsqueeze(0))  # (1, 6H)
    none = g.op("prim::Constant")
    none.setType(torch._C.OptionalType.ofTensor())  # an omitted optional input
    h0 = none if h0 is None or _is_none(h0) else h0
    xt = g.op("Transpose", x, perm_i=[1, 0, 2])  # (T, B, F)
    y, h_n = g.op(
        "GRU", xt, W, R, B, none, h0, hidden_size_i=H, linear_before_reset_i=0, outputs=2
    )  # (T, 1, B, H), (1, B, H)
    axis1 = g.op("Constant", value_t=torch.tensor([1]))
    y = g.op("Transpose", g.op("Squeeze", y, axis1), perm_i=[1, 0, 2])  # (B, T, H)
    return y, h_n


def _is_none(value) -> bool:
    """A traced None (prim::Constant of type None)."""
    node = getattr(value, "node", lambda: None)()
    return node is not None and node.mustBeNone()


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
