"""ConvLSTM1D / ConvLSTM2D exported to ONNX (issue 18): the time loop is one ONNX Loop, so
batch and time stay free. onnxruntime against Keras's predict at other batch sizes and
lengths than the traced ones (padding same / valid, strides, dilation, return_sequences,
return_state, initial state from other layers, go_backwards, masks, every elementwise
activation, a next-frame stack, Keras 2 files with hard_sigmoid), and the state carried
between chunks through state_in / state_out. Every Keras model is built once per module."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from port_helpers import keras_predict

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.export.onnx import export_onnx, streaming
from torch_rnnsin.port.kinds.convlstm import ConvLSTM
from torch_rnnsin.port.model import load_keras_model

SHAPES = [(3, 5), (1, 1)]  # (batch, length); the export traces (2, 3)
# (activation, recurrent_activation): every elementwise Keras 3 activation once, the
# unbounded ones as activation with a bounded gate (parallel layers, no compounding);
# exponential overflows in any recurrence: test_every_loop_activation_in_onnx has it
GATES = ["sigmoid", "hard_sigmoid", "sparse_sigmoid", "tanh", "hard_tanh", "softsign"]
ACTS = [
    "linear", "relu", "relu6", "elu", "selu", "celu", "softplus", "swish", "silu", "gelu",
    "hard_silu", "hard_swish", "leaky_relu", "mish", "log_sigmoid",
    "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus",
]  # fmt: skip
ACT_PAIRS = [(a, GATES[i % len(GATES)]) for i, a in enumerate(ACTS)] + [
    (g, GATES[i - 1]) for i, g in enumerate(GATES)
]


def models(K, keras2: bool) -> dict:
    """name -> (Keras model, spatial shape of x, mask input?)."""
    L = K.layers
    out = {}

    def one(name, space, layer):
        inp = K.Input((None, *space))
        out[name] = (K.Model(inp, layer(inp)), space, False)

    one("1d-same-seq", (7, 2), L.ConvLSTM1D(3, 3, padding="same", return_sequences=True))
    one("2d-valid-last", (5, 4, 2), L.ConvLSTM2D(2, 3))
    if keras2:  # tf_keras's defaults: recurrent_activation="hard_sigmoid" (its formula)
        one("1d-strides-state", (9, 2), L.ConvLSTM1D(3, 3, strides=2, return_state=True))
        return out
    one(
        "1d-dilated-state",
        (9, 2),
        L.ConvLSTM1D(3, 3, dilation_rate=2, return_sequences=True, return_state=True),
    )
    one("2d-same-even", (5, 4, 2), L.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True))
    one(
        "2d-strides-same-back",
        (7, 6, 2),
        L.ConvLSTM2D(2, (3, 2), strides=(2, 3), padding="same", go_backwards=True,
                     return_sequences=True),
    )  # fmt: skip
    one("1d-back-state", (6, 2), L.ConvLSTM1D(2, 2, padding="same", go_backwards=True,
                                              return_state=True))  # fmt: skip
    # every elementwise activation: ConvLSTM1D layers side by side, concatenated
    inp = K.Input((None, 5, 2))
    ys = [
        L.ConvLSTM1D(1, 2, padding="same", activation=act, recurrent_activation=rec,
                     return_sequences=True)(inp)
        for act, rec in ACT_PAIRS
    ]  # fmt: skip
    out["activations"] = (K.Model(inp, L.Concatenate()(ys)), (5, 2), False)
    # the initial state computed by other layers from a second input
    x, s = K.Input((None, 6, 2)), K.Input((6, 3))
    h0, c0 = L.Dense(2, activation="tanh")(s), L.Conv1D(2, 3, padding="same")(s)
    y, h, c = L.ConvLSTM1D(2, 3, padding="same", return_sequences=True, return_state=True)(
        x, initial_state=[h0, c0]
    )
    out["initial-state"] = (K.Model([x, s], [y, h, c]), (6, 2), False)
    for name, seq, zero in [("mask-seq-zero", True, True), ("mask-last", False, False)]:
        x, m = K.Input((None, 5, 2)), K.Input((None,), dtype="bool")
        y = L.ConvLSTM1D(2, 2, return_sequences=seq, zero_output_for_mask=zero)(x, mask=m)
        out[name] = (K.Model([x, m], y), (5, 2), True)
    # keras-io's next-frame model, small: ConvLSTM2D, BatchNormalization, Conv3D
    inp = K.Input((None, 6, 6, 1))
    x = L.ConvLSTM2D(3, (3, 3), padding="same", return_sequences=True, activation="relu")(inp)
    x = L.BatchNormalization()(x)
    x = L.ConvLSTM2D(2, (1, 1), padding="same", return_sequences=True, activation="relu")(x)
    x = L.Conv3D(1, (3, 3, 3), activation="sigmoid", padding="same")(x)
    out["next-frame"] = (K.Model(inp, x), (6, 6, 1), False)
    return out


def inputs(model, space, masked: bool, B: int, T: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(B, T, *space)).astype(np.float32)]
    if masked:  # row 0 post-padded, 1 pre-padded, 2 holed
        m = np.ones((B, T), bool)
        if T > 1:
            m[0, T // 2 + 1 :] = False
            m[1 % B, :2] = False
            m[2 % B, 1] = False
        xs.append(m)
    for extra in model.inputs[len(xs) :]:  # the initial-state model's second input
        xs.append(rng.normal(size=(B, *extra.shape[1:])).astype(np.float32))
    return xs


def as_list(y) -> list[np.ndarray]:
    return [np.asarray(v) for v in y] if isinstance(y, list | tuple) else [np.asarray(y)]


def build(K, root: Path, keras2: bool) -> dict:
    """name -> (file, [(inputs, Keras's outputs) per shape in SHAPES], spatial shape)."""
    built = {}
    for i, (name, (model, space, masked)) in enumerate(models(K, keras2).items()):
        rng = np.random.default_rng(i)
        for w in model.weights:
            v = rng.uniform(-0.8, 0.8, size=tuple(w.shape)).astype(np.float32)
            w.assign(np.abs(v) + 0.2 if "variance" in w.name else v)
        path = root / f"{name}.{'h5' if keras2 else 'keras'}"
        model.save(path)
        cases = []
        for j, (B, T) in enumerate(SHAPES):
            xs = inputs(model, space, masked, B, T, seed=10 * i + j)
            want = as_list(keras_predict(model, xs[0] if len(xs) == 1 else xs))
            assert all(np.isfinite(w).all() for w in want), name
            cases.append((xs, want))
        built[name] = (path, cases, space)
    return built


@pytest.fixture(scope="module")
def built3(keras3, tmp_path_factory):
    return build(keras3, tmp_path_factory.mktemp("k3"), False)


@pytest.fixture(scope="module")
def built2(keras2, tmp_path_factory):
    return build(keras2, tmp_path_factory.mktemp("k2"), True)


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= 1e-5 * max(1.0, float(np.abs(want).max())), err


def export(path: Path, tmp_path: Path):
    """Port, export (the exporter checks onnxruntime against torch at batch 3 / length 7
    and 1 / 1), and open a session: (ported model, session)."""
    import onnxruntime

    ported = load_keras_model(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = export_onnx(ported, tmp_path / "m.onnx")
    notes = [str(w.message) for w in caught if "exported without state" in str(w.message)]
    assert bool(notes) == (not ported.streamable), notes
    return ported, onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])


def run(sess, xs: list[np.ndarray], states: list[np.ndarray] | None = None):
    """-> (ys, state_out list); zero states unless given."""
    ins = sess.get_inputs()
    feed = {i.name: x for i, x in zip(ins, xs, strict=False)}
    state_ins = [i for i in ins if i.name.startswith("state_in_")]
    B = xs[0].shape[0]
    for k, i in enumerate(state_ins):
        shape = (B, *i.shape[1:])
        feed[i.name] = states[k] if states is not None else np.zeros(shape, np.float32)
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, feed)
    n_state = sum(n.startswith("state_out_") for n in names)
    return got[: len(got) - n_state], got[len(got) - n_state :]


def check_against_keras(built: dict, name: str, tmp_path: Path, ort):
    path, cases, _ = built[name]
    ported, sess = export(path, tmp_path)
    # the time loop is one Loop node, whatever the length
    import onnx

    proto = onnx.load(str(tmp_path / "m.onnx"))
    n_conv = sum(isinstance(m, ConvLSTM) for m in ported.modules())
    assert sum(n.op_type == "Loop" for n in proto.graph.node) == n_conv
    for xs, want in cases:
        ys, _ = run(sess, xs)
        assert len(ys) == len(want)
        for g, w in zip(ys, want, strict=True):
            close(g, w)
    return ported, sess


NAMES3 = [
    "1d-same-seq", "2d-valid-last", "1d-dilated-state", "2d-same-even", "2d-strides-same-back",
    "1d-back-state", "activations", "initial-state", "mask-seq-zero", "mask-last", "next-frame",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES3)
def test_onnx_equals_keras3(built3, ort, tmp_path, name):
    ported, sess = check_against_keras(built3, name, tmp_path, ort)
    streamable = name not in (
        "2d-strides-same-back",
        "1d-back-state",
        "initial-state",
        "next-frame",
    )
    assert ported.streamable == streamable
    if name == "next-frame":  # keras-io's Conv3D head convolves over time too: no state
        assert ported.why_not_streamable() == "Conv3D 'conv3d': its kernel spans 3 time steps"
    state_ins = [i for i in sess.get_inputs() if i.name.startswith("state_in_")]
    assert len(state_ins) == (
        2 * sum(isinstance(m, ConvLSTM) for m in ported.modules()) if streamable else 0
    )
    x = sess.get_inputs()[0]
    assert x.shape[:2] == ["batch", "time"]


@pytest.mark.parametrize("name", ["1d-same-seq", "2d-valid-last", "1d-strides-state"])
def test_onnx_equals_keras2(built2, ort, tmp_path, name):
    check_against_keras(built2, name, tmp_path, ort)


@pytest.mark.parametrize("name", ["1d-same-seq", "1d-dilated-state", "2d-valid-last", "mask-last"])
def test_state_carried_between_chunks(built3, ort, tmp_path, name):
    """Two onnxruntime calls, state_out fed back as state_in, equal Keras's one call."""
    path, cases, _ = built3[name]
    _, sess = export(path, tmp_path)
    xs, want = cases[0]
    first, states = run(sess, [x[:, :2] for x in xs])
    second, states = run(sess, [x[:, 2:] for x in xs], states)
    assert len(states) == 2
    if want[0].ndim == xs[0].ndim:  # a sequence: the chunks' outputs, joined
        close(np.concatenate([first[0], second[0]], 1), want[0])
    else:
        close(second[0], want[0])
    if len(want) == 3:  # return_state: [y, h, c] == the carried state
        close(states[0], want[1])
        close(states[1], want[2])


def test_loops_name_only_unscripted_layers(built3):
    """Streaming.loops() names blocks that loop in Python and have no scripted Loop: none
    among ConvLSTM's (the refusal message's list), and a block's declaration counts."""
    ported = load_keras_model(built3["1d-same-seq"][0])
    graph = streaming(ported.eval())
    assert graph.loops() == ""
    block = next(m for m in ported.modules() if isinstance(m, ConvLSTM))
    assert block.loops_in_python

    class Other(torch.nn.Module):
        loops_in_python = True
        keras_class, keras_name = "FutureKind", "f"

    graph.model.add_module("extra", Other())
    assert graph.loops() == "FutureKind 'f'"


def test_activation_without_loop_form_is_refused(built3, ort, tmp_path):
    ported = load_keras_model(built3["1d-same-seq"][0])
    block = next(m for m in ported.modules() if isinstance(m, ConvLSTM))
    block.o = dict(block.o, activation="unknown_act")
    with pytest.raises(Refused) as e:
        export_onnx(ported, tmp_path / "m.onnx")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"ConvLSTM1D {block.keras_name!r}: activation='unknown_act'" in msg, msg
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("act", ["softmax", "log_softmax"])
def test_axis_activations_refused_at_port(keras3, tmp_path, act):
    """Not elementwise: Keras applies them over the channels; refused in one line."""
    inp = keras3.Input((None, 5, 2))
    model = keras3.Model(inp, keras3.layers.ConvLSTM1D(2, 2, activation=act)(inp))
    model.save(tmp_path / "m.keras")
    with pytest.raises(Refused, match=rf"ConvLSTM1D .*activation='{act}'"):
        load_keras_model(tmp_path / "m.keras")


class Act(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.fn(v)


def test_every_loop_activation_in_onnx(ort):
    """Each activation of the scripted loop, in onnxruntime, equals port/kinds/activations.py's
    (Keras 2 and 3 tables); softmax, log_softmax and glu are refused at port."""
    import io

    from torch_rnnsin.export.onnx import CONV_ACTS
    from torch_rnnsin.port.kinds.activations import KERAS2, KERAS3

    x = torch.linspace(-12, 12, 2001).reshape(3, 667)  # (3, 667)
    for keras, table in ((2, KERAS2), (3, KERAS3)):
        for name, fn in table.items():
            if name in ("softmax", "log_softmax", "glu"):
                continue
            expr = CONV_ACTS.get(f"{name}/{keras}", CONV_ACTS.get(name))
            assert expr is not None, name
            cu = torch.jit.CompilationUnit(f"def f(v: Tensor):\n    return {expr.format(v='v')}\n")

            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(Act(cu.f), (x,), buf, opset_version=17, dynamo=False)
            sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
            got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
            close(got, fn(x).numpy())
