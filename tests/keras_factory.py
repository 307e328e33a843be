"""Real Keras models for the porting tests, built from a small declarative spec.

A case is a model spec (features, Sequential or Functional, a list of layer specs)
given random non-trivial weights (uniform(-0.8, 0.8), biases included, so that a gate
order or bias mix-up cannot hide), run by Keras's own ``predict`` on fixed random
inputs, and saved in every layout a user may hold:

    keras          Keras 3 .keras
    weights+keras  Keras 3 .weights.h5, architecture from a .keras (holding other weights)
    weights+json   Keras 3 .weights.h5, architecture from model.to_json()
    legacy_h5      Keras 3 model.save("m.h5")
    k2_h5          Keras 2 (tf_keras) model.save("m.h5"); layer names carry global
                   counters (lstm_3, dense_7) since many models share one process
    k2_old_names   the same file with its cells named as older Keras 2 releases named
                   them, with counters too (lstm_3/lstm_cell_9/kernel:0)
    k2_weights+json  Keras 2 model.save_weights("w.h5") with model.to_json()

Forward unidirectional cases also get a Keras stateful twin (stateful=True, same
weights) that predicts the inputs in two chunks. Predictions run eagerly (the same
predict loop, without tracing a graph: ~5 times cheaper), and a few cases also record
Keras 3's default traced predict to show that the two agree. Keras is
started once per API: the Keras 3 and Keras 2 halves run side by side in the session's two
Keras workers (tests/kcache.py, which then serve the other Keras tests), and the result is a folder with one manifest per half and one .npz per case and
half. Models the port must refuse (REFUSALS) are saved there too, and one model whose
outputs are so large that float32 rounding alone exceeds 1e-5 (``port --check`` exit 1).

Run by hand: ``python tests/keras_factory.py k3|k2 OUT_DIR``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from port_helpers import keras_predict

B, T, SPLIT = 3, 7, 3  # batch, length, first chunk's length for the state checks
SCALE = 0.8
LAYOUTS = (
    "keras",
    "weights+keras",
    "weights+json",
    "legacy_h5",
    "k2_h5",
    "k2_old_names",
    "k2_weights+json",
)
RECURRENT = ("SimpleRNN", "LSTM", "GRU")


# ----------------------------------------------------------------------------- specs


def rnn(kind: str, units: int, **opts) -> dict:
    return {"kind": kind, "units": units, **opts}


def dense(units: int, **opts) -> dict:
    return {"kind": "Dense", "units": units, **opts}


def bidi(inner: dict, merge_mode: str | None) -> dict:
    return {"kind": "Bidirectional", "merge_mode": merge_mode, "layer": inner}


def td(inner: dict) -> dict:
    return {"kind": "TimeDistributed", "layer": inner}


def case(name: str, features: int, *layers: dict, api: str = "sequential") -> dict:
    return {"name": name, "features": features, "api": api, "layers": list(layers)}


RS = {"return_sequences": True}
BACK = {"go_backwards": True}
RB = {"reset_after": False}


def _bidi_cases() -> list[dict]:
    """Each recurrent kind under each merge_mode; return_sequences alternates so that
    every kind and every merge mode is seen with it on and off."""
    kinds = [("srnn", "SimpleRNN", {}), ("lstm", "LSTM", {}), ("gru", "GRU", {})]
    kinds.append(("grurb", "GRU", RB))
    out = []
    for ki, (short, kind, opts) in enumerate(kinds):
        for mi, merge in enumerate(("concat", "sum", "mul", "ave", None)):
            seq = (ki + mi) % 2 == 1
            inner = rnn(kind, 2 + (ki + mi) % 2, **opts, **(RS if seq else {}))
            name = f"bidi_{short}_{merge or 'none'}{'_seq' if seq else ''}"
            if merge is None:  # two outputs: a Functional model, no head
                out.append(case(name, 2, bidi(inner, None), api="functional"))
            else:
                out.append(case(name, 2, bidi(inner, merge), dense(1)))
    return out


SPECS: list[dict] = [
    # SimpleRNN (the lesson's model first: one feature, one unit, five weights)
    case("lesson", 1, rnn("SimpleRNN", 1), dense(1)),
    case("srnn_tanh", 1, rnn("SimpleRNN", 3), dense(1)),
    case("srnn_relu", 2, rnn("SimpleRNN", 3, activation="relu"), dense(1)),
    case("srnn_nobias", 2, rnn("SimpleRNN", 3, use_bias=False), dense(1, use_bias=False)),
    case("srnn_seq", 2, rnn("SimpleRNN", 4, **RS), td(dense(1))),
    case("srnn_back", 2, rnn("SimpleRNN", 3, **BACK), dense(1)),
    case("srnn_relu_back_seq", 2, rnn("SimpleRNN", 3, activation="relu", **BACK, **RS), dense(2)),
    # LSTM
    case("lstm", 2, rnn("LSTM", 4), dense(1)),
    case("lstm_nobias", 3, rnn("LSTM", 3, use_bias=False), dense(1)),
    case("lstm_seq", 2, rnn("LSTM", 4, **RS), td(dense(2, activation="tanh"))),
    case("lstm_back", 2, rnn("LSTM", 4, **BACK), dense(1)),
    case("lstm_back_seq", 1, rnn("LSTM", 3, **BACK, **RS), dense(1)),
    # GRU, reset_after True (nn.GRU) and False (a cell of its own)
    case("gru", 2, rnn("GRU", 3), dense(1)),
    case("gru_seq", 2, rnn("GRU", 3, **RS), dense(1)),
    case("gru_back", 2, rnn("GRU", 3, **BACK), dense(1)),
    case("gru_back_seq", 3, rnn("GRU", 2, **BACK, **RS), dense(1)),
    case("grurb", 2, rnn("GRU", 3, **RB), dense(1)),
    case("grurb_seq", 2, rnn("GRU", 3, **RB, **RS), td(dense(1, activation="sigmoid"))),
    case("grurb_back", 1, rnn("GRU", 3, **RB, **BACK), dense(1)),
    case("grurb_back_seq", 2, rnn("GRU", 4, **RB, **BACK, **RS), dense(1)),
    # Bidirectional
    *_bidi_cases(),
    # stacks, heads, dropout
    case("stack_seq", 2, rnn("LSTM", 4, **RS), rnn("GRU", 3), dense(1)),
    case(
        "stack_fn",
        2,
        rnn("LSTM", 4, **RS),
        {"kind": "Dropout", "rate": 0.3},
        rnn("GRU", 3),
        dense(1),
        api="functional",
    ),
    case("stack_srnn", 1, rnn("SimpleRNN", 3, **RS), rnn("SimpleRNN", 2), dense(1)),
    case(
        "stack_deep",
        3,
        rnn("GRU", 3, **RB, **RS),
        rnn("LSTM", 3, **RS),
        rnn("SimpleRNN", 2, activation="relu", **RS),
        td(dense(3, activation="softmax")),
        api="functional",
    ),
    case(
        "stack_bidi",
        2,
        bidi(rnn("LSTM", 3, **RS), "concat"),
        bidi(rnn("GRU", 2), "sum"),
        dense(1),
    ),
    case(
        "heads",
        2,
        rnn("LSTM", 4, **RS),
        dense(4, activation="relu"),
        {"kind": "Dropout", "rate": 0.5},
        dense(3, activation="softmax"),
    ),
    # the other activations the port accepts, one each (a deep chain of heads would
    # flatten the outputs and hide errors)
    *[
        case(f"act_{act}", 2, rnn("GRU", 3, **RS), dense(3, activation=act))
        for act in ("elu", "selu", "softplus", "softsign", "swish", "silu", "gelu", "exponential")
    ],
    case("act_layer", 2, rnn("LSTM", 3, **RS), {"kind": "Activation", "activation": "softplus"}),
    case("gru_nobias", 2, rnn("GRU", 3, use_bias=False), dense(1)),
    case("grurb_nobias", 2, rnn("GRU", 3, **RB, use_bias=False), dense(1)),
    case(
        "training_opts",  # initializers, regularizers, constraints: no effect on predict
        2,
        rnn(
            "LSTM",
            3,
            unit_forget_bias=False,
            kernel_regularizer="l2",
            recurrent_constraint="max_norm",
        ),
        dense(1, bias_regularizer="l1", kernel_initializer="zeros"),
    ),
    case(
        "noise_layers",  # identity at inference
        2,
        rnn("LSTM", 3, **RS),
        {"kind": "GaussianNoise", "stddev": 0.5},
        {"kind": "GaussianDropout", "rate": 0.3},
        {"kind": "AlphaDropout", "rate": 0.2},
        {"kind": "ActivityRegularization", "l1": 0.1},
        rnn("GRU", 2),
        dense(1),
    ),
    case(
        "spatial_dropout",
        2,
        rnn("LSTM", 3, **RS),
        {"kind": "SpatialDropout1D", "rate": 0.3},
        rnn("GRU", 2),
        dense(1),
    ),
    # streaming needs every layer on the time axis to act step by step: a pointwise front end
    # streams (Keras's stateful twin agrees), a causal convolution does not (the twin's chunks
    # differ from one call, and the port refuses a state)
    case(
        "pointwise_front",
        2,
        {"kind": "Conv1D", "filters": 4, "kernel_size": 1, "activation": "relu"},
        {"kind": "LayerNormalization"},
        rnn("GRU", 3, **RS),
        td(dense(2)),
        {"kind": "Softmax"},
    ),
    case(
        "conv_front",
        2,
        {"kind": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "causal"},
        rnn("GRU", 3, **RS),
        dense(2),
    ),
    case(
        "lstm_dropout_opts",
        2,
        rnn("LSTM", 3, dropout=0.2, recurrent_dropout=0.1, **RS),
        dense(1),
    ),
]


# Keras's default predict traces a graph (~0.2 s a model): the references are its eager
# predict, and these cases check that both agree.
GRAPH_CHECKED = ("lesson", "lstm", "gru", "grurb_back_seq", "bidi_lstm_none_seq", "stack_deep")


MIXES_TIME = ("conv_front",)  # forward, but a layer mixes time steps: never streamed


def is_forward(spec: dict) -> bool:
    """No Bidirectional and no go_backwards anywhere: the state can be handed on."""
    return all(
        layer["kind"] != "Bidirectional" and not layer.get("go_backwards", False)
        for layer in spec["layers"]
    )


# ----------------------------------------------------------------------------- building


def make_layer(K, layer: dict, stateful: bool = False):
    """One Keras layer from its spec; K is the keras (3) or tf_keras (2) module."""
    opts = {k: v for k, v in layer.items() if k not in ("kind", "layer")}
    if "layer" in layer:
        opts["layer"] = make_layer(K, layer["layer"], stateful)
    if stateful and layer["kind"] in RECURRENT:
        opts["stateful"] = True
    return getattr(K.layers, layer["kind"])(**opts)


def build_model(K, spec: dict, stateful: bool = False):
    """The spec's model, for any time length (for a fixed batch B when stateful)."""
    F = spec["features"]
    inp = K.Input(batch_shape=(B, None, F)) if stateful else K.Input(shape=(None, F))
    layers = [make_layer(K, layer, stateful) for layer in spec["layers"]]
    if spec["api"] == "sequential":
        return K.Sequential([inp, *layers])
    h = inp
    for layer in layers:
        h = layer(h)
    return K.Model(inp, h)


def random_weights(model, seed: int) -> list[np.ndarray]:
    """uniform(-0.8, 0.8) for every array (kernels and biases alike)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(-SCALE, SCALE, w.shape).astype(np.float32) for w in model.get_weights()]


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def inputs_of(spec: dict, batch: int = B, length: int = T) -> np.ndarray:
    rng = np.random.default_rng(seed_of(spec["name"]) + 1)
    return rng.uniform(-1, 1, (batch, length, spec["features"])).astype(np.float32)


def as_list(y) -> list[np.ndarray]:
    """A model's output(s) as a list of float arrays (merge_mode=None gives two)."""
    if isinstance(y, (list, tuple)):
        return [np.asarray(a) for a in y]
    return [np.asarray(y)]


def predict(model, x: np.ndarray, eager: bool = True) -> list[np.ndarray]:
    """Keras's own predict in one batch (``port_helpers.keras_predict``): eager (a stateful
    model keeps its state between calls), or ``eager=False``, the default traced predict."""
    return as_list(keras_predict(model, x, eager))


# ----------------------------------------------------------------------------- refusals
# Models the port must refuse. Each entry: the layer (class, name) the refusal must
# name, and the option it must name (None for an unsupported layer kind).


def _refusal_k3(keras, name: str):
    L = keras.layers
    seq = keras.Sequential
    inp = keras.Input(shape=(None, 2))
    if name == "conv1d":
        return seq([inp, L.Conv1D(2, 2, name="conv_in", dtype="float64"), L.LSTM(2), L.Dense(1)])
    if name == "mha_scores":  # the attention scores as a second output
        h, scores = L.MultiHeadAttention(1, 2, name="mha")(inp, inp, return_attention_scores=True)
        return keras.Model(inp, [L.Dense(1)(L.LSTM(2)(h)), scores])
    if name == "lambda":
        return seq([inp, L.Lambda(lambda t: t * 2.0, name="double"), L.LSTM(2), L.Dense(1)])
    if name == "custom_activation":

        @keras.saving.register_keras_serializable(package="rnnsin_test")
        def scaled_tanh(t):
            return 0.5 * keras.ops.tanh(t)

        return seq([inp, L.SimpleRNN(2, activation=scaled_tanh, name="srnn_custom"), L.Dense(1)])
    if name == "bilinear":
        h = L.Reshape((-1, 2, 1))(L.LSTM(4, return_sequences=True)(inp))
        h = L.UpSampling2D(2, interpolation="bilinear", name="up")(h)
        return keras.Model(inp, L.Dense(1)(h))
    if name == "dense_float16":
        return seq([inp, L.LSTM(2), L.Dense(1, dtype="float16", name="head_f16")])
    raise KeyError(name)


def _refusal_k2(tf_keras, name: str):
    L = tf_keras.layers
    inp = tf_keras.Input(shape=(None, 2))
    if name == "k2_time_major":
        lstm = L.LSTM(2, time_major=True, name="lstm_tm")
        return tf_keras.Sequential([inp, lstm, L.Dense(1)])
    raise KeyError(name)


REFUSALS: dict[str, tuple[str, str, str | None]] = {
    # name: (layer class, layer name, option or None); what is ported now (masks, graphs,
    # return_state, RNN(cell), relu and hard_sigmoid recurrences, LayerNormalization,
    # attention) is checked against Keras in test_port_graphs.py and test_kinds_*.py
    "conv1d": ("Conv1D", "conv_in", "dtype"),  # Conv1D is ported; float64 is not
    "mha_scores": ("MultiHeadAttention", "mha", "return_attention_scores"),
    "lambda": ("Lambda", "double", None),
    "custom_activation": ("SimpleRNN", "srnn_custom", "activation"),
    "bilinear": ("UpSampling2D", "up", "interpolation"),
    "dense_float16": ("Dense", "head_f16", "dtype"),
    "k2_time_major": ("LSTM", "lstm_tm", "time_major"),
}


# ----------------------------------------------------------------------------- the two halves


def build_k3(out: Path) -> dict:
    import keras

    manifest = {}
    for spec in SPECS:
        d = out / spec["name"]
        d.mkdir(parents=True, exist_ok=True)
        model = build_model(keras, spec)
        model.save(d / "arch.keras")  # Keras's own initial weights: the arch only
        weights = random_weights(model, seed_of(spec["name"]))
        model.set_weights(weights)
        model.save(d / "model.keras")
        model.save_weights(d / "model.weights.h5")
        (d / "config.json").write_text(model.to_json())
        model.save(d / "legacy.h5")
        x = inputs_of(spec)
        arrays = {"x": x}
        if spec["name"] in GRAPH_CHECKED:  # Keras's default, traced predict
            arrays.update({f"g{i}": y for i, y in enumerate(predict(model, x, eager=False))})
        arrays.update({f"y{i}": y for i, y in enumerate(predict(model, x))})
        if is_forward(spec):
            twin = build_model(keras, spec, stateful=True)
            twin.set_weights(weights)
            x1, x2 = x[:, :SPLIT], x[:, SPLIT:]
            (arrays["state_y1"],) = predict(twin, x1)  # state kept between calls
            (arrays["state_y2"],) = predict(twin, x2)
        for i, w in enumerate(weights):
            arrays[f"w{i}"] = w
        np.savez(d / "k3.npz", **arrays)
        manifest[spec["name"]] = spec
    for name in REFUSALS:
        if not name.startswith("k2_"):
            _refusal_k3(keras, name).save(out / f"refuse_{name}.keras")
    big_outputs(keras).save(out / "big_outputs.keras")
    return manifest


def big_outputs(keras):
    """An LSTM with a Dense head in the tens of thousands (un-scaled targets): the float32
    rounding of the LSTM output (~1e-7), amplified 1e4 times, exceeds 1e-5 absolute."""
    model = build_model(keras, case("big", 3, rnn("LSTM", 6, **RS), dense(2)))
    weights = random_weights(model, 7)
    weights[-2] *= 2e4  # Dense kernel
    weights[-1] += 3e4  # Dense bias
    model.set_weights(weights)
    return model


def build_k2(out: Path) -> dict:
    import tf_keras

    manifest, cells = {}, 0
    for spec in SPECS:
        d = out / spec["name"]
        d.mkdir(parents=True, exist_ok=True)
        model = build_model(tf_keras, spec)
        weights = random_weights(model, seed_of(spec["name"]))  # same shapes, same weights
        model.set_weights(weights)
        model.save(d / "k2.h5")
        model.save_weights(d / "k2_weights.h5")
        (d / "k2_config.json").write_text(model.to_json())
        cells = with_counted_cells(d / "k2.h5", d / "k2_old_names.h5", cells)
        x = inputs_of(spec)
        y2 = predict(model, x)
        np.savez(d / "k2.npz", **{f"y{i}": y for i, y in enumerate(y2)})
        manifest[spec["name"]] = [n for n in (layer.name for layer in model.layers)]
    for name in REFUSALS:
        if name.startswith("k2_"):
            _refusal_k2(tf_keras, name).save(out / f"refuse_{name}.h5")
    return manifest


CELL = re.compile(r"(?<=/)(simple_rnn_cell|lstm_cell|gru_cell)(?=/)")


def with_counted_cells(src: Path, dst: Path, counter: int) -> int:
    """A copy of a Keras 2 .h5 with its cells named as older Keras 2 releases named them,
    with a global counter (lstm_2/lstm_cell_7/kernel:0): the same arrays under the names
    the file's weight_names attributes give, so a reader that guesses names fails.
    Returns the counter after the cells renamed."""
    import h5py

    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        root = f["model_weights"]
        for layer in root.attrs["layer_names"]:
            g = root[layer]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]]
            renamed: dict[str, str] = {}  # old cell path -> new
            for n in names:
                m = CELL.search(n)
                if m and n[: m.end()] not in renamed:
                    counter += 1
                    renamed[n[: m.end()]] = f"{n[: m.end()]}_{counter}"
            for old, new in renamed.items():
                g.move(old, new)
            new_names = []
            for n in names:
                m = CELL.search(n)
                new_names.append(renamed[n[: m.end()]] + n[m.end() :] if m else n)
            g.attrs["weight_names"] = np.array([n.encode() for n in new_names])
    return counter


def main(argv: list[str]) -> None:
    half, out = argv[0], Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    manifest = build_k3(out) if half == "k3" else build_k2(out)
    (out / f"manifest_{half}.json").write_text(json.dumps(manifest, indent=1))


# ----------------------------------------------------------------------------- for the tests


@dataclass
class KerasCase:
    """One built model: its files per layout, inputs, and Keras's outputs."""

    name: str
    spec: dict
    dir: Path
    x: np.ndarray  # (B, T, F)
    y: list[np.ndarray]  # Keras 3 predict, one array per output
    y_k2: list[np.ndarray]  # Keras 2 predict of the same weights
    weights: list[np.ndarray]
    state: tuple[np.ndarray, np.ndarray] | None  # stateful twin's outputs on the two chunks
    y_graph: list[np.ndarray] | None  # Keras 3's traced predict (GRAPH_CHECKED cases)
    k2_layer_names: list[str]

    @property
    def forward(self) -> bool:
        return self.state is not None

    def source(self, layout: str) -> tuple[Path, Path | None]:
        """(file, architecture or None) for one layout."""
        d = self.dir
        return {
            "keras": (d / "model.keras", None),
            "weights+keras": (d / "model.weights.h5", d / "arch.keras"),
            "weights+json": (d / "model.weights.h5", d / "config.json"),
            "legacy_h5": (d / "legacy.h5", None),
            "k2_h5": (d / "k2.h5", None),
            "k2_old_names": (d / "k2_old_names.h5", None),
            "k2_weights+json": (d / "k2_weights.h5", d / "k2_config.json"),
        }[layout]


def run_halves(out: Path) -> None:
    """Build both halves in the session's two Keras workers (tests/kcache.py) side by
    side; raise on failure."""
    import kcache

    jobs = [
        (half, kcache.run_script(Path(__file__), [half, str(out)], half)) for half in ("k3", "k2")
    ]
    for half, job in jobs:
        err = job.wait()
        if err is not None:
            raise RuntimeError(f"keras_factory {half} failed:\n{err[-3000:]}")


def load_cases(out: Path) -> dict[str, KerasCase]:
    specs = json.loads((out / "manifest_k3.json").read_text())
    k2_names = json.loads((out / "manifest_k2.json").read_text())
    cases = {}
    for name, spec in specs.items():
        d = out / name
        with np.load(d / "k3.npz") as a3, np.load(d / "k2.npz") as a2:
            n = sum(k.startswith("y") for k in a3.files)
            cases[name] = KerasCase(
                name=name,
                spec=spec,
                dir=d,
                x=a3["x"],
                y=[a3[f"y{i}"] for i in range(n)],
                y_k2=[a2[f"y{i}"] for i in range(n)],
                weights=[a3[f"w{i}"] for i in range(sum(k.startswith("w") for k in a3.files))],
                state=(a3["state_y1"], a3["state_y2"]) if "state_y1" in a3.files else None,
                y_graph=[a3[f"g{i}"] for i in range(n)] if "g0" in a3.files else None,
                k2_layer_names=k2_names[name],
            )
    return cases


@dataclass
class Built:
    """The factory's folder: every case by name, and the files to refuse."""

    root: Path
    cases: dict[str, KerasCase]

    def refusal(self, name: str) -> Path:
        return self.root / (
            f"refuse_{name}.h5" if name.startswith("k2_") else f"refuse_{name}.keras"
        )


def build(out: Path) -> Built:
    """Build once into ``out`` (unless already there) and load. Callers that may run in
    parallel (xdist workers) hold a lock around this."""
    if not (out / "manifest_k2.json").exists() or not (out / "manifest_k3.json").exists():
        run_halves(out)
    return Built(out, load_cases(out))


if __name__ == "__main__":
    main(sys.argv[1:])
