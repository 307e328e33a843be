"""The ported model: a chain of real nn.RNN / nn.LSTM / nn.GRU blocks and heads.

model = load_keras_model("model.keras")        # eval mode, float32, no Keras needed
y = model(x)                                    # x (B, T, F) -> what Keras's predict gives
y, state = model(x, state, return_state=True)   # state: flat list, layer order; LSTM: h, c
save_keras_model(model, "back.keras")           # .keras, .weights.h5, .safetensors, .pt
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import io as formats
from . import layers as L
from .graph import check_entry, model_layers
from .modules import Bidirectional, Dense, Passthrough, Recurrent

ARCH_FORMAT = "torch_rnnsin.port"
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
# Layers that are the identity at inference: the options they may carry, and (first) the
# ones written back, those Keras 3 accepts.
PASSTHROUGH = {
    "Dropout": ({"rate", "noise_shape", "seed"}, set()),
    "SpatialDropout1D": ({"rate", "seed"}, {"noise_shape"}),  # Keras 2 writes noise_shape
    "GaussianNoise": ({"stddev", "seed"}, set()),
    "GaussianDropout": ({"rate", "seed"}, {"noise_shape"}),
    "AlphaDropout": ({"rate", "noise_shape", "seed"}, set()),
    "ActivityRegularization": ({"l1", "l2"}, set()),
}
SUPPORTED = (
    "InputLayer, SimpleRNN, LSTM, GRU, Bidirectional, Dense, TimeDistributed(Dense), "
    f"Activation, {', '.join(PASSTHROUGH)}"
)
TORCH_EXTS = (".pt", ".safetensors")
KERAS_OUT_EXTS = (".keras", ".weights.h5")


def table(block) -> list[L.Row]:
    """The parameter table of a Recurrent or Dense block."""
    if isinstance(block, Dense):
        return L.dense_table(block.options["use_bias"])
    o = block.options
    return L.rnn_table(block.keras_class, o["use_bias"], o.get("reset_after", True))


class PortedModel(nn.Module):
    """A Keras model as torch modules; ``layers`` holds one block per Keras layer."""

    def __init__(
        self,
        blocks: list[nn.Module],
        input_shape: tuple,
        name: str = "ported",
        input_name: str = "input_layer",
    ):
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.input_shape = tuple(input_shape)  # (T or None, F)
        self.keras_model_name, self.input_name = name, input_name
        self.source_format = ""  # what it was loaded from: keras3, keras3-h5, keras2-h5, pt, ...

    @property
    def state_sizes(self) -> list[int]:
        return [h for b in self.layers for h in b.state_sizes]

    @property
    def streamable(self) -> bool:
        return all(b.streamable for b in self.layers)

    def _refuse_state(self) -> None:
        for b in self.layers:
            if not b.streamable:
                why = (
                    "it reads the whole sequence backwards"
                    if isinstance(b, Bidirectional)
                    else "go_backwards=True reads the sequence from its end"
                )
                raise ValueError(
                    f"{b.keras_class} {b.keras_name!r}: state in/out is not supported: {why}, "
                    "so a chunk cannot continue from a carried state"
                )

    def _split_state(self, state, B: int) -> list:
        sizes = self.state_sizes
        if state is None:
            return [None] * len(self.layers)
        state = list(state)
        if len(state) != len(sizes):
            raise ValueError(f"state: expected {len(sizes)} tensors, got {len(state)}")
        for k, (s, h) in enumerate(zip(state, sizes, strict=True)):
            if tuple(s.shape) != (B, h):
                raise ValueError(f"state[{k}]: expected shape {(B, h)}, got {tuple(s.shape)}")
        per, i = [], 0
        for b in self.layers:
            n = len(b.state_sizes)
            per.append(state[i : i + n] if n else None)
            i += n
        return per

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (B, T, F) -> y (as Keras's predict); with return_state, also the new flat state."""
        return self._run(x, state, return_state)[0]

    def _run(self, x: torch.Tensor, state=None, return_state: bool = False, trace=None):
        if state is not None or return_state:
            self._refuse_state()
        F = self.input_shape[-1]
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != F or x.shape[1] < 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"input: expected a tensor of shape (batch, time >= 1, {F}), got {got}"
            )
        new: list[torch.Tensor] = []
        for b, s in zip(self.layers, self._split_state(state, x.shape[0]), strict=True):
            x, s_out = b(x, s)
            new += s_out
            if trace is not None:
                trace.append((f"{b.keras_class} {b.keras_name!r}", x))
        return ((x, new) if return_state else x), trace

    def layer_outputs(self, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """Every layer's output, in order (``port --check`` compares them with Keras)."""
        return self._run(x, trace=[])[1]

    def keras_config(self) -> dict:
        """A Keras 3 Sequential config that Keras loads back into the same model."""
        T, F = self.input_shape
        first = {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {"batch_shape": [None, T, F], "dtype": "float32", "name": self.input_name},
            "registered_name": None,
        }
        return {
            "module": "keras",
            "class_name": "Sequential",
            "config": {
                "name": self.keras_model_name,
                "trainable": True,
                "layers": [first] + [keras_entry(b) for b in self.layers],
            },
            "registered_name": None,
        }

    def keras_weights(self) -> dict[str, list[np.ndarray]]:
        """Layer name -> arrays in Keras's get_weights() order."""
        out = {}
        for b in self.layers:
            if isinstance(b, Bidirectional):
                f, r = b.forward_layer, b.backward_layer
                out[b.keras_name] = L.torch_to_keras(f.rnn, table(f)) + L.torch_to_keras(
                    r.rnn, table(r)
                )
            elif isinstance(b, Recurrent):
                out[b.keras_name] = L.torch_to_keras(b.rnn, table(b))
            elif isinstance(b, Dense):
                out[b.keras_name] = L.torch_to_keras(b.linear, table(b))
        return out


def _entry(cls: str, config: dict) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


def keras_entry(b) -> dict:
    """One block as a Keras 3 layer entry (only the options that shape the computation)."""
    if isinstance(b, Recurrent):
        return _entry(b.keras_class, {"name": b.keras_name, **b.options})
    if isinstance(b, Bidirectional):
        cfg = {
            "name": b.keras_name,
            "merge_mode": b.merge_mode,
            "layer": keras_entry(b.forward_layer),
            "backward_layer": keras_entry(b.backward_layer),
        }
        return _entry("Bidirectional", cfg)
    if isinstance(b, Dense) and b.keras_class == "TimeDistributed":
        inner = _entry("Dense", {"name": b.inner_name, **b.options})
        return _entry("TimeDistributed", {"name": b.keras_name, "layer": inner})
    if isinstance(b, Dense):
        return _entry("Dense", {"name": b.keras_name, **b.options})
    return _entry(b.keras_class, {"name": b.keras_name, **b.config})


# --- config -> blocks ------------------------------------------------------------------------


def _input_shape(cls: str, name: str, cfg: dict):
    """(T, F) from an InputLayer or a Keras 2 layer's batch_input_shape; None if absent."""
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if shape is None:
        return None

    def size(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    ok = isinstance(shape, list) and len(shape) == 3 and size(shape[2])
    if not ok or not (shape[1] is None or size(shape[1])):
        raise L.refuse(cls, name, "batch_shape", shape, "inputs of shape (batch, time, features)")
    return (shape[1], shape[2])


def _recurrent(entry: dict, F: int) -> Recurrent:
    cls, name, cfg = check_entry(entry)
    if cls not in RECURRENT:
        raise ValueError(f"{cls} {name!r}: only SimpleRNN, LSTM or GRU can be wrapped here")
    return Recurrent(cls, name, L.recurrent_options(cls, name, cfg), F)


def make_block(cls: str, name: str, cfg: dict, F: int, ndim: int):
    """One Keras layer -> (torch block, output features, output rank)."""
    if cls in (*RECURRENT, "Bidirectional", "TimeDistributed") and ndim != 3:
        raise ValueError(f"{cls} {name!r}: needs a (batch, time, features) input here")
    if cls in RECURRENT:
        b = Recurrent(cls, name, L.recurrent_options(cls, name, cfg), F)
        return b, b.out_features, 3 if b.return_sequences else 2
    if cls == "Bidirectional":
        L.check_options(cls, name, cfg, {"name", "layer", "backward_layer", "merge_mode"})
        mode = L.option(
            cls, name, cfg, "merge_mode", "concat", allowed=("concat", "sum", "mul", "ave", None)
        )
        if not isinstance(cfg.get("layer"), dict):
            raise L.refuse(cls, name, "layer", cfg.get("layer"), "a SimpleRNN, LSTM or GRU")
        fwd = _recurrent(cfg["layer"], F)
        if cfg.get("backward_layer") is not None:
            bwd = _recurrent(cfg["backward_layer"], F)
        else:  # Keras 2 files: the backward layer is the forward one, reading reversed
            inner = dict(cfg["layer"], config=dict(cfg["layer"]["config"]))
            inner["config"]["go_backwards"] = not fwd.go_backwards
            inner["config"]["name"] = f"backward_{fwd.keras_name}"
            bwd = _recurrent(inner, F)
        if bwd.return_sequences != fwd.return_sequences or bwd.out_features != fwd.out_features:
            raise L.refuse(
                cls, name, "backward_layer", bwd.keras_name, "same units and return_sequences"
            )
        b = Bidirectional(name, mode, fwd, bwd)
        return b, b.out_features, 3 if b.return_sequences else 2
    if cls == "Dense":
        b = Dense(name, L.dense_options(cls, name, cfg), F, time_distributed=False)
        return b, b.out_features, ndim
    if cls == "TimeDistributed":
        L.check_options(cls, name, cfg, {"name", "layer"})
        icls, iname, icfg = check_entry(cfg.get("layer"))
        if icls != "Dense":
            raise L.refuse(cls, name, "layer", icls, "TimeDistributed(Dense) only")
        b = Dense(name, L.dense_options(icls, iname, icfg), F, time_distributed=True)
        b.inner_name = iname
        return b, b.out_features, ndim
    if cls == "Activation":
        L.check_options(cls, name, cfg, {"name", "activation"})
        act = L.option(cls, name, cfg, "activation", None, allowed=L.DENSE_ACTIVATIONS)
        return Passthrough(cls, name, {"activation": act}, act, F), F, ndim
    if cls in PASSTHROUGH:
        written, dropped = PASSTHROUGH[cls]
        L.check_options(cls, name, cfg, written | dropped | {"name"})
        kept = {k: v for k, v in cfg.items() if k in written}
        return Passthrough(cls, name, kept, "linear", F), F, ndim
    raise ValueError(f"{cls} {name!r}: layer class {cls} is not supported (supported: {SUPPORTED})")


def _first_kernel_rows(entries: list[dict], weights: dict) -> int | None:
    for e in entries:
        arrays = (weights or {}).get(check_entry(e)[1])
        if arrays:
            return int(np.shape(arrays[0])[0])
    return None


def build_model(config: dict, weights: dict | None = None) -> PortedModel:
    """Blocks from a Keras model config; with ``weights`` (name -> arrays), filled in."""
    entries = model_layers(config)
    shape = None
    for e in entries:
        cls, name, cfg = check_entry(e)
        shape = shape or _input_shape(cls, name, cfg)
    T, F = shape if shape else (None, _first_kernel_rows(entries, weights))
    if F is None or F < 1:
        raise ValueError("model config: the input feature size is not given (no InputLayer)")
    blocks, f, ndim, after_list, input_name = [], F, 3, None, "input_layer"
    for e in entries:
        cls, name, cfg = check_entry(e)
        if after_list is not None:
            raise ValueError(
                f"{cls} {name!r}: follows Bidirectional {after_list!r} with merge_mode=None "
                "(two outputs); only a single chain is supported"
            )
        if cls == "InputLayer":
            keys = {"name", "batch_shape", "batch_input_shape", "sparse", "ragged", "optional"}
            L.check_options(cls, name, cfg, keys)
            for key in ("sparse", "ragged", "optional"):
                L.option(cls, name, cfg, key, False, allowed=(False,))
            input_name = name
            continue
        b, f, ndim = make_block(cls, name, cfg, f, ndim)
        if isinstance(b, Bidirectional) and b.merge_mode is None:
            after_list = name
        blocks.append(b)
    name = str((config.get("config") or {}).get("name") or "ported")
    model = PortedModel(blocks, (T, F), name=name, input_name=input_name)
    if weights is not None:
        load_keras_arrays(model, weights)
    return model.float().eval()


def load_keras_arrays(model: PortedModel, weights: dict) -> None:
    """Copy Keras arrays (layer name -> get_weights() list) into the model; all checked."""
    wanted = {}
    for b in model.layers:
        if isinstance(b, Bidirectional):
            f, r = b.forward_layer, b.backward_layer
            wanted[b.keras_name] = [(f.rnn, table(f)), (r.rnn, table(r))]
        elif isinstance(b, Recurrent):
            wanted[b.keras_name] = [(b.rnn, table(b))]
        elif isinstance(b, Dense):
            wanted[b.keras_name] = [(b.linear, table(b))]
    extra = sorted(set(weights) - set(wanted))
    if extra:
        raise ValueError(f"weights for layers {extra} that the model config does not have")
    for b in model.layers:
        if b.keras_name not in wanted:
            continue
        arrays = weights.get(b.keras_name)
        if arrays is None:
            raise ValueError(f"{b.keras_class} {b.keras_name!r}: no weights in the file")
        parts = wanted[b.keras_name]
        counts = [len(L.keras_names(t)) for _, t in parts]
        if len(arrays) != sum(counts):
            raise ValueError(
                f"{b.keras_class} {b.keras_name!r}: expected {sum(counts)} arrays, "
                f"got {len(arrays)}"
            )
        i = 0
        for (module, t), n, half in zip(parts, counts, ("forward", "backward"), strict=False):
            where = f"{b.keras_class} {b.keras_name!r}" + (f" ({half})" if len(parts) > 1 else "")
            L.keras_to_torch(module, t, arrays[i : i + n], where)
            i += n


# --- files -----------------------------------------------------------------------------------


def _ext(path: Path) -> str:
    name = path.name.lower()
    for ext in (".weights.h5", ".safetensors", ".keras", ".pt", ".h5"):
        if name.endswith(ext):
            return ext
    return path.suffix.lower()


def load_keras_model(path: str | os.PathLike, arch: str | os.PathLike | None = None):
    """A Keras model file as a torch ``PortedModel`` (eval mode, float32).

    ``path``: .keras, Keras 3 or Keras 2 .h5, .weights.h5 (with ``arch``: a .keras or a config
    .json), or a .safetensors / .pt written by ``save_keras_model``. Nothing is unpickled and
    Keras is never imported; a layer or option that cannot be ported exactly is refused.
    """
    path = Path(path)
    if _ext(path) in TORCH_EXTS:
        sd, meta = formats.read_torch_file(path)
        if not isinstance(meta, dict) or meta.get("format") != ARCH_FORMAT:
            raise ValueError(f"{path}: no {ARCH_FORMAT} architecture in the file")
        if arch is not None:
            raise ValueError(f"{path}: holds its own architecture; --arch is not needed")
        try:
            model = build_model(meta.get("keras_config"))
            load_state_arrays(model, sd)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        model.source_format = _ext(path)[1:]
        return model
    kf = formats.read_keras(path, arch)
    try:
        model = build_model(kf.config, flat_weights(kf.weights))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    model.source_format = kf.dialect
    return model


# TEMPORARY, until the model rewrite takes the io contract itself: io's weights are
# {layer path: {sub-path: arrays}}; this model still wants {name: arrays in get_weights() order}.
SUB_ORDER = ("", "cell", "forward_layer/cell", "backward_layer/cell", "layer", "layer/cell")


def flat_weights(weights: dict) -> dict[str, list[np.ndarray]]:
    """TEMPORARY: each layer's arrays in the order "", "cell", "forward_layer/cell", ..."""

    def rank(sub: str) -> tuple:
        return (SUB_ORDER.index(sub) if sub in SUB_ORDER else len(SUB_ORDER), sub)

    return {k: [a for s in sorted(subs, key=rank) for a in subs[s]] for k, subs in weights.items()}


def nested_weights(config: dict, flat: dict[str, list[np.ndarray]]) -> dict:
    """TEMPORARY: the inverse of flat_weights for this model's layer kinds."""
    rnn = ("SimpleRNN", "LSTM", "GRU")
    out = {}
    for layer in config["config"]["layers"]:
        cls, name = layer["class_name"], layer["config"]["name"]
        arrays = list(flat.get(name, []))
        if not arrays:
            continue
        if cls in rnn:
            out[name] = {"cell": arrays}
        elif cls == "Bidirectional":
            half = len(arrays) // 2
            out[name] = {"forward_layer/cell": arrays[:half], "backward_layer/cell": arrays[half:]}
        elif cls == "TimeDistributed":
            inner = layer["config"]["layer"]["class_name"]
            out[name] = {"layer/cell" if inner in rnn else "layer": arrays}
        else:
            out[name] = {"": arrays}
    return out


def load_state_arrays(model: PortedModel, sd: dict) -> None:
    """A torch state_dict of NumPy arrays into the model: same keys, same shapes, finite."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(sd)), sorted(set(sd) - set(own))
    if missing or extra:
        raise ValueError(
            f"state_dict does not match the architecture: missing {missing}, extra {extra}"
        )
    with torch.no_grad():
        for k, t in own.items():
            a = L.as_float32(k, sd[k])
            if a.shape != tuple(t.shape):
                raise ValueError(f"{k}: expected shape {tuple(t.shape)}, got {a.shape}")
            t.copy_(torch.from_numpy(np.ascontiguousarray(a)))


def save_keras_model(model: PortedModel, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``model`` as .keras / .weights.h5 (Keras 3), .safetensors or .pt, atomically.

    An existing file is never replaced unless ``overwrite=True``.
    """
    if not isinstance(model, PortedModel):
        raise ValueError(
            f"save_keras_model: expected a model from load_keras_model, got {type(model).__name__}"
            " (for the lesson's SinRNN use torch_to_keras + save_keras_weights)"
        )
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; not overwritten")
    ext = _ext(path)
    if ext in KERAS_OUT_EXTS:
        config = model.keras_config()
        formats.write_keras(path, config, nested_weights(config, model.keras_weights()))
    elif ext in TORCH_EXTS:
        sd = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        arch = {"format": ARCH_FORMAT, "version": 1, "keras_config": model.keras_config()}
        formats.write_torch_file(path, sd, arch)
    else:
        raise ValueError(
            f"{path}: unknown output format; use .keras, .weights.h5, .safetensors or .pt"
        )
    return path


# --- the layer table (inspect) ---------------------------------------------------------------


def _torch_module_text(m) -> str:
    if isinstance(m, nn.Linear):
        return f"nn.Linear({m.in_features}, {m.out_features}, bias={m.bias is not None})"
    kind = {"RNN": "nn.RNN", "LSTM": "nn.LSTM", "GRU": "nn.GRU"}.get(type(m).__name__)
    if kind is None:
        return f"{type(m).__name__}({m.input_size}, {m.hidden_size}, bias={m.bias}) [own cell]"
    extra = f", nonlinearity={m.nonlinearity!r}" if kind == "nn.RNN" else ""
    return f"{kind}({m.input_size}, {m.hidden_size}{extra}, bias={m.bias}, batch_first=True)"


def _describe_block(b, prefix: str) -> list[str]:
    if isinstance(b, Recurrent):
        o = b.options
        flags = [k for k in ("return_sequences", "go_backwards") if o[k]]
        if b.keras_class == "GRU":
            flags.append(f"reset_after={o['reset_after']}")
        head = f"{prefix}rnn = {_torch_module_text(b.rnn)}"
        lines = [f"  -> {head}" + (f"  ({', '.join(flags)})" if flags else "")]
        lines += L.describe(b.rnn, table(b), f"{prefix}rnn.")
        names = ["h", "c"] if b.keras_class == "LSTM" else ["h"]
        state = ", ".join(f"{n} (B, {h})" for n, h in zip(names, b.state_sizes, strict=True))
        return [*lines, f"    state: {state}"]
    if isinstance(b, Bidirectional):
        lines = [f"  merge_mode={b.merge_mode!r}; the backward layer reads the sequence reversed"]
        for half in ("forward_layer", "backward_layer"):
            inner = getattr(b, half)
            lines.append(f"  {half}: {inner.keras_class} {inner.keras_name!r}")
            lines += [f"  {line}" for line in _describe_block(inner, f"{prefix}{half}.")[:-1]]
        return [*lines, "    state: none (not streamable)"]
    if isinstance(b, Dense):
        head = f"  -> {prefix}linear = {_torch_module_text(b.linear)}, then {b.activation}"
        return [head, *L.describe(b.linear, table(b), f"{prefix}linear.")]
    if b.activation != "linear":
        return [f"  -> activation {b.activation} (no parameters)"]
    return ["  -> identity at inference (no parameters)"]


def describe_model(model: PortedModel, source: str = "") -> list[str]:
    """The layer table: each Keras layer, its torch module, every tensor and how it maps."""
    T, F = model.input_shape
    state = model.state_sizes if model.streamable else "not streamable"
    lines = [
        f"{source} ({model.source_format or 'model'}): input (batch, {T or 'time'}, {F}); "
        f"state sizes {state}"
    ]
    for i, b in enumerate(model.layers):
        lines.append(f"{b.keras_class} {b.keras_name!r}")
        lines += _describe_block(b, f"layers.{i}.")
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append(f"{n} trainable parameters (as in Keras)")
    return lines
