"""What every layer kind shares: the layer's config, the torch block, the registry.

A layer kind is one module in ``port/kinds/`` that registers a builder per Keras class:

    @kind("Dense")
    def dense(layer: Layer, inputs: list[Spec]) -> Block:
        layer.check({"units", "activation", "use_bias"})      # every other key is refused
        units = layer.option("units", kind=int)
        return DenseBlock(layer, ...)

The builder reads and checks the config (one ``Refused`` line naming class, name and option for
anything it does not compute exactly) and returns a ``Block``: the torch module, its weight
tables (``parts``), its output specs, the Keras config it writes back, its inspect lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from ...common.errors import Refused
from ..tables import Part

# Options that change nothing at inference; accepted wherever a layer has them.
NO_EFFECT = frozenset(
    {
        "trainable",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "beta_initializer",
        "gamma_initializer",
        "moving_mean_initializer",
        "moving_variance_initializer",
        "embeddings_initializer",
        "depthwise_initializer",
        "pointwise_initializer",
        "alpha_initializer",
        "unit_forget_bias",
        "kernel_regularizer",
        "recurrent_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "beta_regularizer",
        "gamma_regularizer",
        "embeddings_regularizer",
        "depthwise_regularizer",
        "pointwise_regularizer",
        "alpha_regularizer",
        "kernel_constraint",
        "recurrent_constraint",
        "bias_constraint",
        "beta_constraint",
        "gamma_constraint",
        "embeddings_constraint",
        "depthwise_constraint",
        "pointwise_constraint",
        "alpha_constraint",
        "dropout",
        "recurrent_dropout",
        "seed",
        "unroll",
        "implementation",
        "batch_input_shape",  # Keras 2: the input shape, read by the graph
        "batch_shape",
        "batch_size",
        "input_shape",
        "input_dim",
        "input_length",
        "lora_alpha",
        "momentum",
        "renorm",
        "renorm_clipping",
        "renorm_momentum",
        "fused",
        "virtual_batch_size",
        "adjustment",
        "synchronized",
    }
)
# Options that must have exactly this value (anything else computes differently).
FIXED = {
    "time_major": False,
    "quantization_config": None,
    "lora_rank": None,
    "lora_enabled": False,
    "weights": None,
    "sparse": False,
    "ragged": False,
    "autocast": True,
    "input_dtype": None,
}


def is_float32(dtype) -> bool:
    """Keras 2 strings, Keras 3 DTypePolicy dicts, or None (the default, float32)."""
    if isinstance(dtype, dict):
        dtype = (dtype.get("config") or {}).get("name")
    return dtype in (None, "float32")


@dataclass(frozen=True)
class Spec:
    """One tensor between layers: shape without the batch axis (None = free), dtype."""

    shape: tuple[int | None, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:  # with the batch axis, as Keras counts
        return len(self.shape) + 1


@dataclass
class Layer:
    """One Keras layer entry: class, name, config, and the file's Keras major version."""

    cls: str
    name: str
    cfg: dict
    keras: int = 3  # 2 or 3: some formulas differ (hard_sigmoid)
    path: str = ""  # "outer/inner" inside nested models
    mapped: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self.path = self.path or self.name

    def refuse(self, option: str, value, supported: str) -> Refused:
        """The one-line error for an option we do not compute."""
        return Refused(
            f"{self.cls} {self.name!r}: {option}={value!r} is not supported ({supported})"
        )

    def fail(self, why: str) -> Refused:
        return Refused(f"{self.cls} {self.name!r}: {why}")

    def check(self, mapped) -> None:
        """Every key of the config is mapped, without effect, or fixed at a harmless value."""
        self.mapped = set(mapped) | {"name"}
        for key, value in self.cfg.items():
            if key in self.mapped or key in NO_EFFECT:
                continue
            if key == "dtype":
                if not is_float32(value):
                    raise self.refuse("dtype", value, "only float32 is ported")
            elif key in FIXED:
                if value != FIXED[key] and not (key == "weights" and value == []):
                    raise self.refuse(key, value, f"only {key}={FIXED[key]!r} is ported")
            else:
                raise self.refuse(key, value, f"{self.cls} options ported: {sorted(self.mapped)}")

    def option(self, key: str, default=None, *, allowed=None, kind=None):
        """One mapped option, type- and value-checked (kind: int (>= 1), bool, float, tuple)."""
        value = self.cfg.get(key, default)
        if kind is int and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE
        ):
            raise self.refuse(key, value, f"a positive integer up to {MAX_SIZE}")
        if kind is bool and not isinstance(value, bool):
            raise self.refuse(key, value, "true or false")
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.refuse(key, value, "a number")
        if allowed is not None and value not in allowed:
            raise self.refuse(key, value, f"supported: {', '.join(map(repr, allowed))}")
        return value

    def ints(self, key: str, n: int, default=None, *, minimum: int = 1) -> tuple[int, ...]:
        """An int or a list of n ints (kernel_size, strides, ...) as a tuple of n ints."""
        value = self.cfg.get(key, default)
        v = [value] * n if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(v, list | tuple)
            or len(v) != n
            or any(
                isinstance(i, bool) or not isinstance(i, int) or not minimum <= i <= MAX_SIZE
                for i in v
            )
        ):
            raise self.refuse(key, value, f"{n} integer(s) >= {minimum}")
        return tuple(v)

    def sub(self, key: str) -> Layer:
        """A wrapped layer (Bidirectional's layer, TimeDistributed's layer, RNN's cell)."""
        if self.path.count("/") >= MAX_WRAPPING:
            raise self.fail(f"layers wrapped more than {MAX_WRAPPING} deep are not supported")
        entry = self.cfg.get(key)
        cls, name, cfg = check_entry(entry, where=f"{self.cls} {self.name!r}: {key}")
        return Layer(cls, name, cfg, self.keras, f"{self.path}/{name}")


MAX_SIZE = 1 << 24  # units, filters, vocabulary, ...: checked before any module is built
MAX_WRAPPING = 32  # a layer inside a layer inside ... (TimeDistributed(TimeDistributed(...)))

BUILT_IN_MODULES = (
    "keras",
    "keras.layers",
    "keras.models",
    "keras.src.models.functional",
    "keras.src.models.sequential",
    "keras.src.models.model",
    "tf_keras",
    "tf_keras.layers",
    "tensorflow.keras",
    "tensorflow.keras.layers",
)


OP_MODULES = ("keras.src.ops.numpy", "keras.src.ops.core", "keras.src.ops.math", "keras.src.ops.nn")


def _keras_src_layer(module) -> bool:
    """keras.src.layers.<package>.<module>: Keras 3's own layer modules, names checked."""
    parts = str(module).split(".")
    return parts[:3] == ["keras", "src", "layers"] and all(p.isidentifier() for p in parts)


def check_entry(entry, where: str = "model config") -> tuple[str, str, dict]:
    """(class, name, config) of one layer entry; custom or third-party classes refused."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise Refused(f"{where}: not a Keras layer entry: {str(entry)[:80]}")
    cls, cfg = entry["class_name"], entry.get("config", {})
    if not isinstance(cfg, dict):
        raise Refused(f"{where}: {cls}'s config is not a JSON object")
    name = entry.get("name") or cfg.get("name")
    name = str(name) if name is not None else "?"
    module, registered = entry.get("module"), entry.get("registered_name")
    built_in = module is None or module in BUILT_IN_MODULES or _keras_src_layer(module)
    ops = module in OP_MODULES  # Keras 3 records mask arithmetic as op layers
    if not (built_in or ops) or registered not in (None, cls):
        raise Refused(
            f"{cls} {name!r}: custom layer (module={module!r}, registered_name={registered!r}) "
            "is not supported; only built-in Keras layers are ported"
        )
    return cls, name, cfg


class Block(nn.Module):
    """One Keras layer in torch.

    ``forward(*xs)`` computes the layer as Keras's predict does (the path ONNX export traces).
    ``apply`` is what the graph calls: it adds masks, and for recurrent layers the state.
    """

    takes_mask = False  # forward accepts mask= (a (B, T) bool tensor)
    mask_rule = "pass"  # the output mask: "pass" the first input's, or "none"
    state_sizes: tuple[int, ...] = ()  # the carried state (B, H) tensors, for streaming
    streamable = True  # a recurrent block: a chunk can continue from its carried state
    # Streaming (two chunks with the state handed on = one call) needs every layer that sees
    # the streamed time axis (axis 1) to compute each step from the same step of its inputs:
    #   "elementwise"  value by value (any rank)
    #   "features"     across the axes after time (so only with a time axis apart: rank >= 3)
    #   ""             it mixes steps (``mixes_steps`` says how); the default: a kind opts in
    per_step = ""
    own_code = ""  # "" when the maths is torch's own module; else why our own module
    loops_in_python = False  # its torch code steps through time in a Python loop (ConvLSTM)

    @property
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Each carried state tensor's shape without the batch axis (ConvLSTM: maps)."""
        return tuple((h,) for h in self.state_sizes)

    def __init__(self, layer: Layer, outputs: list[Spec]):
        super().__init__()
        self.keras_class, self.keras_name, self.keras_path = layer.cls, layer.name, layer.path
        self.output_specs = list(outputs)
        self.config: dict = {}  # Keras 3 config written back (the options that compute)

    # --- the graph's calls --------------------------------------------------------------------
    def compute_mask(self, xs: list[torch.Tensor], masks: list) -> torch.Tensor | None:
        return masks[0] if (self.mask_rule == "pass" and masks) else None

    def check_call(self, args: list, kwargs: dict) -> None:
        """Refuse, before anything runs, a call this block does not compute (its call
        arguments as the graph gives them: tensor ids and plain values)."""

    def apply(self, xs: list[torch.Tensor], masks: list, kwargs: dict, state=None):
        """-> (outputs list, output mask, new carried state or None)."""
        mask = masks[0] if masks else None
        y = self(*xs, mask=mask) if self.takes_mask and mask is not None else self(*xs)
        outs = list(y) if isinstance(y, list | tuple) else [y]
        return outs, self.compute_mask(xs, masks), None

    # --- streaming ---------------------------------------------------------------------------
    def mixes_steps(self) -> str | None:
        """Why this layer, fed the streamed time axis (axis 1), makes an output step depend on
        other steps (so a chunk differs from its part of one call); None: step by step."""
        if self.per_step == "elementwise":
            return None
        if self.per_step == "features":
            rank = self.output_specs[0].rank if self.output_specs else 0
            return None if rank >= 3 else "it acts across axis 1, the time axis"
        return "it combines time steps"

    def timed_outputs(self, timed: list[bool]) -> list[bool] | str:
        """Which outputs keep the streamed time axis, given which tensor inputs have it (the
        first call arguments, then the named ones); or why a chunk cannot be computed alone."""
        n = len(self.output_specs)
        if not any(timed):
            return [False] * n
        return self.mixes_steps() or [True] * n

    # --- weights, write-back, inspect ----------------------------------------------------------
    def parts(self) -> list[Part]:
        """The weight tables, in Keras's get_weights() order."""
        return []

    def write_parts(self) -> list[Part]:
        """The tables of the Keras 3 layer written back (``keras_entry``'s), when it differs
        from the one read (Keras 2's CuDNNLSTM is written as an LSTM)."""
        return self.parts()

    def keras_entry(self) -> dict:
        """This layer as a Keras 3 layer entry."""
        return entry(self.keras_class, {"name": self.keras_name, **self.config})

    def describe(self) -> list[str]:
        """Inspect lines beyond the weight tables (the torch modules and flags)."""
        return []


def carried_outputs(block: Block, timed: list[bool], sequences: bool) -> list[bool] | str:
    """A recurrent layer's outputs when its state is carried: the sequence output keeps the
    time axis (return_sequences), the last output and the states do not."""
    if not timed[0]:
        return "its sequence input does not come from the streamed inputs"
    return [sequences] + [False] * (len(block.output_specs) - 1)


def window_steps(what: str, k, s, last: bool) -> str | None:
    """Why a window (kernel or pool) of sizes ``k`` and strides ``s`` over the spatial axes
    mixes time steps when axis 1 is streamed; None: one step wide, stride 1, channels last."""
    if not last:
        return "with channels_first, axis 1 (the streamed one) is its channels"
    if k[0] != 1:
        return f"its {what} spans {k[0]} time steps"
    if s[0] != 1:
        return f"its stride {s[0]} skips time steps"
    return None


def entry(cls: str, config: dict) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


Builder = Callable[[Layer, list[Spec]], Block]
KINDS: dict[str, Builder] = {}


@dataclass(frozen=True)
class CallForm:
    """How a kind is called in a graph, beyond its first tensor argument."""

    tensor_args: tuple[str, ...] = ()  # named tensor arguments taken positionally, in order
    states_as_inputs: bool = False  # Keras 2: extra inputs are its initial_state


CALLS: dict[str, CallForm] = {}


def kind(*classes: str, **call) -> Callable[[Builder], Builder]:
    """Register a builder for these Keras classes (one module per family, as onnx2torch does);
    ``call``: its ``CallForm`` when it takes more than one tensor (``tensor_args``,
    ``states_as_inputs``)."""

    def register(fn: Builder) -> Builder:
        for c in classes:
            if c in KINDS:
                raise RuntimeError(f"layer kind {c} registered twice")
            KINDS[c] = fn
            CALLS[c] = CallForm(**call)
        return fn

    return register


def call_form(cls: str) -> CallForm:
    return CALLS.get(cls, CallForm())


REFUSED = {
    "Lambda": "its Python code is never run",
    "TextVectorization": "string preprocessing has no torch tensor equivalent",
    "StringLookup": "string preprocessing has no torch tensor equivalent",
}


def build(layer: Layer, inputs: list[Spec]) -> Block:
    """The block for one layer, or one line naming what is missing."""
    fn = KINDS.get(layer.cls)
    if fn is None:
        why = REFUSED.get(layer.cls, "no such layer kind is ported yet")
        raise Refused(
            f"{layer.cls} {layer.name!r}: layer class {layer.cls} is not supported ({why})"
        )
    return fn(layer, inputs)


def with_shape(spec: Spec, shape) -> Spec:
    return replace(spec, shape=tuple(shape))


def time_input(layer: Layer, inputs: list[Spec], n: int = 1) -> Spec:
    """The first input, which must be (batch, time, features) with known features."""
    if len(inputs) < n:
        raise layer.fail(f"takes {n} input(s), got {len(inputs)}")
    s = inputs[0]
    if len(s.shape) != 2 or s.shape[-1] is None:
        raise layer.fail(
            f"needs a (batch, time, features) input, got (batch, {', '.join(map(str, s.shape))})"
        )
    if s.dtype != "float32":
        raise layer.fail(f"needs a float32 input, got {s.dtype}")
    return s
