"""torch.nn modules -> Keras layers, weights through the same tables as Keras -> torch.

nn.RNN / LSTM / GRU   one SimpleRNN / LSTM / GRU(reset_after=True) per layer, wrapped in
                      Bidirectional when bidirectional; weight_ih_l{k}[_reverse] viewed
                      as the l0 names the tables use; LSTM / SimpleRNN: one bias, the sum
nn.Linear             Dense on the last axis
nn.Embedding          Embedding
nn.Conv1d             Conv1D, channels_last (torch's (B, C, L) is a view of Keras's (B, L, C))
nn.LayerNorm          LayerNormalization(axis=-1);  nn.BatchNorm1d: BatchNormalization
activations, Dropout  Activation / LeakyReLU / Dropout (the identity at inference)
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from torch import nn

from .kgraph import KT, Graph, Stack, Zeros
from .tables import Row, dense_table, rnn_table, torch_to_keras

KINDS = {
    "RNN_TANH": ("SimpleRNN", "tanh"),
    "RNN_RELU": ("SimpleRNN", "relu"),
    "LSTM": ("LSTM", "tanh"),
    "GRU": ("GRU", "tanh"),
}
SNAKE = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.SELU: "selu",
    nn.Softsign: "softsign",
    nn.SiLU: "silu",
}


def kshape_of(real, perm: tuple[int, ...]) -> tuple[int, ...]:
    """The Keras shape of a torch value laid out as ``perm``."""
    shape = [0] * len(perm)
    for i, p in enumerate(perm):
        shape[p] = int(real.shape[i])
    return tuple(shape)


def named(prefix: str, names: list[str], arrays: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """(name relative to the layer, as Keras 2 writes it, array) pairs."""
    return [(f"{prefix}{n}", a) for n, a in zip(names, arrays, strict=True)]


def rnn_arrays(mod: nn.RNNBase, kind: str, k: int, sfx: str) -> list[np.ndarray]:
    """Layer k (direction sfx) of a multi-layer module, through the l0 table."""
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if mod.bias else [])
    view = SimpleNamespace(**{f"{n}_l0": getattr(mod, f"{n}_l{k}{sfx}") for n in names})
    return torch_to_keras(view, rnn_table(kind, bool(mod.bias)))


def initial_states(g: Graph, what: str, lstm: bool, hx, n: int) -> list[list[KT]] | None:
    """hx -> per layer and direction, [h] or [h, c]; None for no state or zeros."""
    parts = list(hx) if lstm and isinstance(hx, (tuple, list)) else [hx]
    if hx is None or all(isinstance(p, Zeros) for p in parts):
        return None
    if len(parts) != (2 if lstm else 1) or not all(isinstance(p, Stack) for p in parts):
        raise g.refuse(f"{what}: an initial state that is not (L*D, B, H) state tensors")
    if any(len(p.items) != n for p in parts):
        raise g.refuse(f"{what}: the initial state has {len(parts[0].items)} layers, not {n}")
    return [[g.layout(p.items[i], (0, 1), what) for p in parts] for i in range(n)]


def recurrent(g: Graph, name: str, mod: nn.RNNBase, real, x, hx=None):
    what = f"nn.{type(mod).__name__} {name!r}"
    if getattr(mod, "proj_size", 0):
        raise g.refuse(
            f"{what}: proj_size={mod.proj_size} is not supported (Keras LSTM has no projection)"
        )
    kind, act = KINDS[mod.mode]
    if not isinstance(x, KT) or len(x.perm) != 3:
        raise g.refuse(f"{what}: needs a batched 3-d input tensor")
    want = (0, 1, 2) if mod.batch_first else (1, 0, 2)
    if x.layer.cls == "InputLayer" and x.perm == want:
        x.layer.dynamic.add(1)
    seq = g.layout(x, want, what)
    L, D, H = mod.num_layers, 2 if mod.bidirectional else 1, mod.hidden_size
    ns = 2 if kind == "LSTM" else 1
    states = initial_states(g, what, kind == "LSTM", hx, L * D)
    B, T = seq.kshape[0], seq.kshape[1]
    cfg = {"units": H, "activation": act, "use_bias": bool(mod.bias), "go_backwards": False}
    if kind != "SimpleRNN":
        cfg["recurrent_activation"] = "sigmoid"
    if kind == "GRU":
        cfg["reset_after"] = True
    hs: list[KT] = []
    cs: list[KT] = []
    names = ["kernel", "recurrent_kernel"] + (["bias"] if mod.bias else [])
    for k in range(L):
        kwargs = {}
        if states:
            kwargs["initial_state"] = [t for d in range(D) for t in states[k * D + d]]
        base = name if L == 1 else f"{name}_l{k}"
        if D == 1:
            layer = g.add(kind, base, cfg, [seq], kwargs)
            cell = f"{SNAKE[kind]}_cell/"
            layer.weights = named(cell, names, rnn_arrays(mod, kind, k, ""))
        else:
            layer = g.add("Bidirectional", base, {"merge_mode": "concat"}, [seq], kwargs)
            layer.bidirectional = True
            for key, d, sfx in (
                ("layer", "forward", ""),
                ("backward_layer", "backward", "_reverse"),
            ):
                inner = {**cfg, "name": f"{d}_{layer.name}", "go_backwards": d == "backward"}
                layer.config[key] = {"module": "keras.layers", "class_name": kind, "config": inner}
                cell = f"{d}_{layer.name}/{SNAKE[kind]}_cell/"
                layer.weights += named(cell, names, rnn_arrays(mod, kind, k, sfx))
        layer.rnn_states = ns
        seq = KT(layer, "seq", (B, T, D * H), (0, 1, 2))
        for d in range(D):
            hs.append(KT(layer, 1 + d * ns, (B, H), (0, 1)))
            if ns == 2:
                cs.append(KT(layer, 2 + d * ns, (B, H), (0, 1)))
    out = KT(seq.layer, "seq", seq.kshape, want)
    return (out, (Stack(tuple(hs)), Stack(tuple(cs)))) if ns == 2 else (out, Stack(tuple(hs)))


def linear(g: Graph, name: str, mod: nn.Linear, real, x) -> KT:
    x = g.last_axis(x, f"nn.Linear {name!r}")
    bias = mod.bias is not None
    arrays = torch_to_keras(mod, dense_table(bias))
    cfg = {"units": mod.out_features, "activation": "linear", "use_bias": bias}
    w = named("", ["kernel", "bias"][: len(arrays)], arrays)
    return g.one("Dense", name, cfg, x, (*x.kshape[:-1], mod.out_features), x.perm, w)


def embedding(g: Graph, name: str, mod: nn.Embedding, real, x) -> KT:
    if mod.max_norm is not None:
        raise g.refuse(f"nn.Embedding {name!r}: max_norm={mod.max_norm} is not supported")
    if x.layer.cls == "InputLayer" and len(x.perm) == 2:
        x.layer.dynamic.add(1)
    arrays = torch_to_keras(mod, [Row("embeddings", "weight")])
    cfg = {"input_dim": mod.num_embeddings, "output_dim": mod.embedding_dim}
    n = len(x.perm)
    kshape, perm = (*x.kshape, mod.embedding_dim), (*x.perm, n)
    return g.one("Embedding", name, cfg, x, kshape, perm, named("", ["embeddings"], arrays))


def conv1d(g: Graph, name: str, mod: nn.Conv1d, real, x) -> KT:
    what = f"nn.Conv1d {name!r}"
    if mod.padding_mode != "zeros":
        raise g.refuse(f"{what}: padding_mode={mod.padding_mode!r} is not supported (zeros only)")
    x = g.layout(x, (0, 2, 1), what)  # torch (B, C, L) is Keras (B, L, C)
    pad = mod.padding
    if isinstance(pad, tuple) and pad[0] > 0:
        kshape = (x.kshape[0], x.kshape[1] + 2 * pad[0], x.kshape[2])
        x = g.one("ZeroPadding1D", f"{name}_pad", {"padding": [pad[0], pad[0]]}, x, kshape, x.perm)
    bias = mod.bias is not None
    arrays = torch_to_keras(mod, dense_table(bias))  # (out, in, k) -> (k, in, out)
    cfg = {
        "filters": mod.out_channels,
        "kernel_size": list(mod.kernel_size),
        "strides": list(mod.stride),
        "padding": "same" if pad == "same" else "valid",
        "data_format": "channels_last",
        "dilation_rate": list(mod.dilation),
        "groups": mod.groups,
        "activation": "linear",
        "use_bias": bias,
    }
    w = named("", ["kernel", "bias"][: len(arrays)], arrays)
    return g.one("Conv1D", name, cfg, x, kshape_of(real, (0, 2, 1)), (0, 2, 1), w)


def layer_norm(g: Graph, name: str, mod: nn.LayerNorm, real, x) -> KT:
    if len(mod.normalized_shape) != 1:
        raise g.refuse(
            f"nn.LayerNorm {name!r}: normalized_shape={mod.normalized_shape} (last axis only)"
        )
    x = g.last_axis(x, f"nn.LayerNorm {name!r}")
    rows = [Row("gamma", "weight")] if mod.weight is not None else []
    rows += [Row("beta", "bias")] if mod.bias is not None else []
    arrays = torch_to_keras(mod, rows) if rows else []
    cfg = {
        "axis": -1,
        "epsilon": mod.eps,
        "center": mod.bias is not None,
        "scale": mod.weight is not None,
    }
    w = named("", [r.keras for r in rows], arrays)
    return g.one("LayerNormalization", name, cfg, x, x.kshape, x.perm, w)


def batch_norm(g: Graph, name: str, mod: nn.BatchNorm1d, real, x) -> KT:
    if mod.running_mean is None:
        raise g.refuse(f"nn.BatchNorm1d {name!r}: track_running_stats=False is not supported")
    rows = [Row("gamma", "weight"), Row("beta", "bias")] if mod.affine else []
    rows += [Row("moving_mean", "running_mean"), Row("moving_variance", "running_var")]
    arrays = torch_to_keras(mod, rows)
    cfg = {"axis": x.perm[1], "epsilon": mod.eps, "center": mod.affine, "scale": mod.affine}
    w = named("", [r.keras for r in rows], arrays)
    return g.one("BatchNormalization", name, cfg, x, x.kshape, x.perm, w)


def activation(g: Graph, name: str, act: str, x) -> KT:
    if not isinstance(x, KT):
        raise g.refuse(f"activation {act!r} of a value that is not one tensor")
    return g.one("Activation", name, {"activation": act}, x, x.kshape, x.perm)


def simple(g: Graph, name: str, mod: nn.Module, real, x):
    """Activations, dropout, identity, flatten: modules without weights."""
    cls = f"nn.{type(mod).__name__} {name!r}"
    if isinstance(mod, (nn.Identity,)) or (isinstance(mod, nn.Dropout) and mod.p == 0):
        return x
    if isinstance(mod, nn.Dropout):
        return g.one("Dropout", name, {"rate": float(mod.p)}, x, x.kshape, x.perm)
    if type(mod) in ACTIVATIONS:
        return activation(g, name, ACTIVATIONS[type(mod)], x)
    if isinstance(mod, nn.GELU) and mod.approximate == "none":
        return activation(g, name, "gelu", x)
    if isinstance(mod, nn.ELU) and mod.alpha == 1.0:
        return activation(g, name, "elu", x)
    if isinstance(mod, nn.Softplus) and mod.beta == 1.0:
        return activation(g, name, "softplus", x)
    if isinstance(mod, nn.LeakyReLU):
        cfg = {"negative_slope": float(mod.negative_slope)}
        return g.one("LeakyReLU", name, cfg, x, x.kshape, x.perm)
    if isinstance(mod, nn.Softmax) and isinstance(x, KT):
        dim = (mod.dim if mod.dim is not None else -1) % len(x.perm)
        if x.perm[dim] == len(x.perm) - 1:
            return activation(g, name, "softmax", x)
        raise g.refuse(f"{cls}: dim={mod.dim} is not Keras's last axis")
    if (
        isinstance(mod, nn.Flatten)
        and isinstance(x, KT)
        and mod.start_dim == 1
        and mod.end_dim == -1
    ):
        if len(x.perm) == 2:
            return x
        x = g.layout(x, tuple(range(len(x.perm))), cls)
        return g.one("Flatten", name, {}, x, kshape_of(real, (0, 1)), (0, 1))
    raise g.refuse(f"{cls}: this module (or its options) has no built-in Keras layer here")


HANDLERS = (
    (nn.RNNBase, recurrent),
    (nn.Linear, linear),
    (nn.Embedding, embedding),
    (nn.Conv1d, conv1d),
    (nn.LayerNorm, layer_norm),
    (nn.BatchNorm1d, batch_norm),
)


def call_module(g: Graph, name: str, mod: nn.Module, real, args: list, kwargs: dict):
    if kwargs:
        raise g.refuse(f"nn.{type(mod).__name__} {name!r}: called with keywords {sorted(kwargs)}")
    for cls, fn in HANDLERS:
        if isinstance(mod, cls):
            if not isinstance(args[0], KT):
                raise g.refuse(f"nn.{type(mod).__name__} {name!r}: its input is not one tensor")
            return fn(g, name, mod, real, *args)
    if len(args) != 1:
        raise g.refuse(f"nn.{type(mod).__name__} {name!r}: no built-in Keras layer for it here")
    return simple(g, name, mod, real, args[0])
