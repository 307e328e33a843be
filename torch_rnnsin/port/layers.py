"""One small mapping per Keras layer kind: its config options and its arrays <-> torch.

Each kind has a *table*: for every torch parameter, the Keras array it comes from, whether
it is transposed and how the gate blocks are reordered. The same table drives both
directions (Keras -> torch, torch -> Keras) and the ``inspect`` listing. Every array's shape
is checked before anything is copied.

    SimpleRNN  kernel (F, H)           -> weight_ih_l0 (H, F)    transposed
               recurrent_kernel (H, H) -> weight_hh_l0 (H, H)    transposed
               bias (H,)               -> bias_ih_l0 (H,)        bias_hh_l0 = 0, frozen
    LSTM       same with 4H rows; gates i, f, c, o in both frameworks: transpose only
    GRU        reset_after=True: columns z, r, h -> rows r, z, n; bias (2, 3H): row 0 ->
               bias_ih_l0, row 1 -> bias_hh_l0.  reset_after=False: the same reorder, one
               bias (3H,) -> bias_ih_l0 of our own cell (nn.GRU cannot apply the reset gate
               before the recurrent matmul)
    Dense      kernel (In, U) -> weight (U, In) transposed; bias (U,) -> bias

Keras -> torch and back: the frozen zero bias_hh is added back into Keras's single bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Options that change nothing at inference; accepted for every layer kind that has them.
NO_EFFECT = frozenset(
    {
        "trainable",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "unit_forget_bias",
        "kernel_regularizer",
        "recurrent_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "recurrent_constraint",
        "bias_constraint",
        "dropout",
        "recurrent_dropout",
        "seed",
        "unroll",
        "implementation",
        "stateful",  # the state is explicit here: forward(x, state)
        "zero_output_for_mask",  # masks are refused, so it never applies
        "batch_input_shape",  # Keras 2: the input shape, read by the graph
        "batch_size",
        "input_shape",
        "input_dim",
        "input_length",
        "lora_alpha",
    }
)
# Options that must have exactly this value (anything else computes differently).
FIXED = {
    "return_state": False,
    "time_major": False,
    "quantization_config": None,
    "lora_rank": None,
    "weights": None,
}
MAPPED = {
    "SimpleRNN": {"name", "units", "activation", "use_bias", "return_sequences", "go_backwards"},
    "LSTM": {
        "name",
        "units",
        "activation",
        "recurrent_activation",
        "use_bias",
        "return_sequences",
        "go_backwards",
    },
    "Dense": {"name", "units", "activation", "use_bias"},
}
MAPPED["GRU"] = MAPPED["LSTM"] | {"reset_after"}

# Dense / Activation activations, each checked against Keras in the tests.
DENSE_ACTIVATIONS = (
    "linear",
    "relu",
    "tanh",
    "sigmoid",
    "softmax",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "gelu",
    "exponential",
)


def refuse(cls: str, name: str, option: str, value, supported: str) -> ValueError:
    """The one-line error for an option we do not map."""
    return ValueError(f"{cls} {name!r}: {option}={value!r} is not supported ({supported})")


def is_float32(dtype) -> bool:
    """Keras 2 strings, Keras 3 DTypePolicy dicts, or None (the default, float32)."""
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    return dtype in (None, "float32")


def check_options(cls: str, name: str, cfg: dict, mapped: set[str] | frozenset = frozenset()):
    """Every key of a layer config is mapped, without effect, or fixed at a harmless value."""
    for key, value in cfg.items():
        if key in mapped or key in NO_EFFECT:
            continue
        if key == "dtype":
            if not is_float32(value):
                raise refuse(cls, name, "dtype", value, "only float32 is ported")
        elif key in FIXED:
            if value != FIXED[key] and not (key == "weights" and value == []):
                raise refuse(cls, name, key, value, f"only {key}={FIXED[key]!r} is ported")
        else:
            raise refuse(cls, name, key, value, f"{cls} options ported: {sorted(mapped)}")


def option(cls: str, name: str, cfg: dict, key: str, default, allowed=None, kind=None):
    """One mapped option, type- and value-checked."""
    value = cfg.get(key, default)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise refuse(cls, name, key, value, "a positive integer")
    if kind is bool and not isinstance(value, bool):
        raise refuse(cls, name, key, value, "true or false")
    if allowed is not None and value not in allowed:
        raise refuse(cls, name, key, value, f"supported: {', '.join(map(str, allowed))}")
    return value


def recurrent_options(cls: str, name: str, cfg: dict) -> dict:
    """SimpleRNN / LSTM / GRU config -> the options that shape the computation."""
    check_options(cls, name, cfg, MAPPED[cls])
    acts = ("tanh", "relu") if cls == "SimpleRNN" else ("tanh",)
    opts = {
        "units": option(cls, name, cfg, "units", None, kind=int),
        "activation": option(cls, name, cfg, "activation", "tanh", allowed=acts),
        "use_bias": option(cls, name, cfg, "use_bias", True, kind=bool),
        "return_sequences": option(cls, name, cfg, "return_sequences", False, kind=bool),
        "go_backwards": option(cls, name, cfg, "go_backwards", False, kind=bool),
    }
    if cls != "SimpleRNN":
        opts["recurrent_activation"] = option(
            cls, name, cfg, "recurrent_activation", "sigmoid", allowed=("sigmoid",)
        )
    if cls == "GRU":
        opts["reset_after"] = option(cls, name, cfg, "reset_after", True, kind=bool)
    return opts


def dense_options(cls: str, name: str, cfg: dict) -> dict:
    """Dense config (also inside TimeDistributed) -> units, activation, use_bias."""
    check_options(cls, name, cfg, MAPPED["Dense"])
    allowed = (*DENSE_ACTIVATIONS, None)
    return {
        "units": option(cls, name, cfg, "units", None, kind=int),
        "activation": option(cls, name, cfg, "activation", "linear", allowed=allowed) or "linear",
        "use_bias": option(cls, name, cfg, "use_bias", True, kind=bool),
    }


# --- the tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One torch parameter and where it lives in Keras."""

    keras: str  # Keras array name, in Keras's get_weights() order of first appearance
    torch: str  # torch parameter name
    transpose: bool = False
    gates: str = ""  # Keras -> torch gate blocks along torch's rows, e.g. "zrh->rzn"
    part: int | None = None  # row of a stacked Keras array (GRU reset_after bias (2, 3H))
    zero: bool = False  # torch-only: kept at 0, frozen, added back into the Keras array


def rnn_table(kind: str, use_bias: bool, reset_after: bool = True) -> list[Row]:
    gates = "zrh->rzn" if kind == "GRU" else ""
    rows = [
        Row("kernel", "weight_ih_l0", transpose=True, gates=gates),
        Row("recurrent_kernel", "weight_hh_l0", transpose=True, gates=gates),
    ]
    if not use_bias:
        return rows
    if kind == "GRU" and reset_after:
        return [
            *rows,
            Row("bias", "bias_ih_l0", gates=gates, part=0),
            Row("bias", "bias_hh_l0", gates=gates, part=1),
        ]
    if kind == "GRU":  # reset_after=False: our own cell has a single bias
        return [*rows, Row("bias", "bias_ih_l0", gates=gates)]
    return [*rows, Row("bias", "bias_ih_l0"), Row("bias", "bias_hh_l0", zero=True)]


def dense_table(use_bias: bool) -> list[Row]:
    rows = [Row("kernel", "weight", transpose=True)]
    return [*rows, Row("bias", "bias")] if use_bias else rows


def keras_names(table: list[Row]) -> list[str]:
    return list(dict.fromkeys(r.keras for r in table))


def _reorder(a: np.ndarray, gates: str, inverse: bool = False) -> np.ndarray:
    """Permute the gate blocks along axis 0 (torch's rows)."""
    if not gates:
        return a
    src, dst = gates.replace("n", "h").split("->")  # torch's candidate n is Keras's h
    if inverse:
        src, dst = dst, src
    blocks = np.split(a, len(src), axis=0)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=0)


def keras_shapes(module, table: list[Row]) -> dict[str, tuple[int, ...]]:
    """The Keras shape of each array the table expects, from the torch parameters."""
    shapes: dict[str, tuple[int, ...]] = {}
    parts: dict[str, int] = {}
    for r in table:
        if r.zero:
            continue
        shape = tuple(getattr(module, r.torch).shape)
        shapes[r.keras] = shape[::-1] if r.transpose else shape
        if r.part is not None:
            parts[r.keras] = max(parts.get(r.keras, 0), r.part + 1)
    return {k: ((parts[k], *s) if k in parts else s) for k, s in shapes.items()}


def as_float32(where: str, a) -> np.ndarray:
    """A real, finite array as float32 (float64 values beyond float32's range refused)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{where}: expected real numbers, got dtype {a.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        b = a.astype(np.float32)
    if not np.all(np.isfinite(b)):
        bad = a[~np.isfinite(b)].ravel()[:3]
        raise ValueError(f"{where}: values must be finite float32 numbers, got {bad.tolist()}")
    return b


def keras_to_torch(module, table: list[Row], arrays, where: str) -> None:
    """Copy Keras arrays (get_weights() order) into ``module``'s parameters; shapes first."""
    import torch

    names = keras_names(table)
    if len(arrays) != len(names):
        raise ValueError(
            f"{where}: expected {len(names)} arrays ({', '.join(names)}), got {len(arrays)}"
        )
    shapes = keras_shapes(module, table)
    by_name = {}
    for name, a in zip(names, arrays, strict=True):
        a = as_float32(f"{where} {name}", a)
        if a.shape != shapes[name]:
            raise ValueError(f"{where} {name}: expected shape {shapes[name]}, got {a.shape}")
        by_name[name] = a
    with torch.no_grad():
        for r in table:
            p = getattr(module, r.torch)
            if r.zero:
                p.zero_()
                p.requires_grad_(False)
                continue
            a = by_name[r.keras] if r.part is None else by_name[r.keras][r.part]
            a = _reorder(a.T if r.transpose else a, r.gates)
            p.copy_(torch.from_numpy(np.ascontiguousarray(a)))


def torch_to_keras(module, table: list[Row]) -> list[np.ndarray]:
    """``module``'s parameters as Keras arrays (frozen zero biases added back in)."""
    out: dict[str, np.ndarray] = {}
    stacked: dict[str, dict[int, np.ndarray]] = {}
    for r in table:
        a = getattr(module, r.torch).detach().cpu().numpy().astype(np.float32)
        a = _reorder(a, r.gates, inverse=True)
        a = a.T if r.transpose else a
        if r.part is not None:
            stacked.setdefault(r.keras, {})[r.part] = a
        elif r.zero:
            out[r.keras] = out[r.keras] + a
        else:
            out[r.keras] = a.copy()
    for name, parts in stacked.items():
        out[name] = np.stack([parts[i] for i in sorted(parts)])
    return [out[n] for n in keras_names(table)]


def describe(module, table: list[Row], prefix: str) -> list[str]:
    """One line per torch parameter: Keras array and shape -> torch name and shape, how."""
    shapes = keras_shapes(module, table)
    lines = []
    for r in table:
        t = f"{prefix}{r.torch} {tuple(getattr(module, r.torch).shape)}"
        if r.zero:
            lines.append(
                f"    (none) -> {t}  zero, frozen; added into Keras {r.keras} on the way back"
            )
            continue
        k = r.keras + (f"[{r.part}]" if r.part is not None else "")
        shape = shapes[r.keras][1:] if r.part is not None else shapes[r.keras]
        how = [w for w, on in (("transposed", r.transpose), (f"gates {r.gates}", r.gates)) if on]
        lines.append(f"    {k} {shape} -> {t}  {', '.join(how) or 'as is'}")
    return lines
