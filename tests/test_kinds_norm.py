"""Normalization and activation layers against Keras 3 and Keras 2 (tf_keras) files, and back."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from conftest import needs_keras
from port_helpers import keras_predict, layer, sequential

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.kinds.activations import KERAS2, KERAS3
from torch_rnnsin.port.model import build_model, load_keras_model, save_keras_model

pytestmark = pytest.mark.keras
T, F = 5, 4


@pytest.fixture(params=[3, 2], ids=["keras3", "keras2"])
def K(request):
    return request.getfixturevalue("keras3" if request.param == 3 else "keras2")


def randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for v in model.weights:
        name = getattr(v, "path", None) or v.name
        lo, hi = (0.3, 1.5) if "variance" in name else (-0.8, 0.8)
        v.assign(rng.uniform(lo, hi, tuple(v.shape)).astype(np.float32))


def close(got, want, label="") -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, label
    err = np.abs(got - want).max()
    assert err <= 1e-5 * max(1.0, np.abs(want).max()), f"{label}: off by {err}"


def check(K, tmp_path, inputs, outputs, xs, round_trip=True, labels=None):
    """Keras predict == the ported torch model (from the saved file) == Keras on the way back."""
    m = K.Model(inputs, outputs)
    randomize(m)
    xs = xs[0] if len(xs) == 1 else xs
    want = keras_predict(m, xs)
    v2 = K.__name__ == "tf_keras"
    path = tmp_path / ("m.h5" if v2 else "m.keras")
    m.save(path)
    ported = load_keras_model(path)
    with torch.no_grad():
        got = ported(*[torch.from_numpy(x) for x in (xs if isinstance(xs, list) else [xs])])
    wants = want if isinstance(want, list) else [want]
    gots = list(got) if isinstance(got, tuple | list) else [got]
    labels = labels or [""] * len(wants)
    for g, w, label in zip(gots, wants, labels, strict=True):
        close(g.numpy(), w, label)
    if round_trip:
        import keras

        save_keras_model(ported, tmp_path / "back.keras")
        back = keras_predict(keras.saving.load_model(tmp_path / "back.keras"), xs)
        back = back if isinstance(back, list) else [back]
        for b, w, label in zip(back, wants, labels, strict=True):
            close(b, w, f"back: {label}")
    return ported


def x_seq(seed=1, shape=(3, T, F)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32) * 1.5


NORM = {
    "bn-after-lstm": lambda L, x: L.BatchNormalization()(L.LSTM(4, return_sequences=True)(x)),
    "bn-axis1-nocenter": lambda L, x: L.BatchNormalization(axis=1, center=False, epsilon=0.01)(x),
    "bn-noscale": lambda L, x: L.LSTM(3)(L.BatchNormalization(scale=False)(x)),
    "ln": lambda L, x: L.LayerNormalization(epsilon=1e-5)(x),
    "ln-axes-noscale": lambda L, x: L.LayerNormalization(axis=[1, 2], scale=False)(x),
    "ln-axis1-nocenter": lambda L, x: L.LayerNormalization(axis=1, center=False)(x),
    "gn": lambda L, x: L.GroupNormalization(groups=2)(x),
    "gn-instance": lambda L, x: L.GroupNormalization(groups=-1, center=False, axis=1)(x),
    "unit": lambda L, x: L.UnitNormalization()(x),
    "unit-axes": lambda L, x: L.UnitNormalization(axis=[1, 2])(x),
}


def test_normalization(K, tmp_path):
    """Every case as one output of one model (one save and load per Keras version)."""
    inp = K.Input((T, F))
    outs = [make(K.layers, inp) for make in NORM.values()]
    check(K, tmp_path, inp, outs, [x_seq()], labels=list(NORM))


def test_rms_keras3(keras3, tmp_path):
    L = keras3.layers
    inp = keras3.Input((T, F))
    outs = [
        L.LayerNormalization(rms_scaling=True)(inp),
        L.RMSNormalization()(inp),
        L.RMSNormalization(axis=[1, 2], epsilon=0.1)(inp),
    ]
    ported = check(keras3, tmp_path, inp, outs, [x_seq()], labels=["ln-rms", "rms", "rms-axes"])
    assert ported.layers[0].rms


def test_thresholded_relu_keras2(keras2, tmp_path):
    inp = keras2.Input((T, F))
    out = keras2.layers.ThresholdedReLU(theta=0.4)(inp)
    ported = check(keras2, tmp_path, inp, out, [x_seq()])
    assert ported.layers[0].keras_entry()["class_name"] == "ReLU"


ACT = {
    "relu-all": lambda L: L.ReLU(max_value=0.6, negative_slope=0.1, threshold=0.2),
    "relu6": lambda L: L.ReLU(max_value=6.0),
    "relu-leaky": lambda L: L.ReLU(negative_slope=0.2),
    "relu-threshold-max": lambda L: L.ReLU(max_value=0.5, threshold=0.3),
    "leaky": lambda L: L.LeakyReLU(0.1),
    "prelu": lambda L: L.PReLU(),
    "prelu-shared": lambda L: L.PReLU(shared_axes=[1]),
    "elu": lambda L: L.ELU(alpha=0.5),
    "rescaling": lambda L: L.Rescaling(1.7, offset=-0.4),
    "softmax": lambda L: L.Softmax(),
    "softmax-axis1": lambda L: L.Softmax(axis=1),
    "softmax-axes": lambda L: L.Softmax(axis=[1, 2]),
}


def test_activation_layers(K, tmp_path):
    L = K.layers
    inp = K.Input((T, F))
    h = L.LSTM(4, return_sequences=True)(inp)
    outs = [L.Dense(3)(make(L)(h)) for make in ACT.values()]
    check(K, tmp_path, inp, outs, [x_seq()], labels=list(ACT))


def test_softmax_with_a_mask(K, tmp_path):
    inp, m = K.Input((6,)), K.Input((6,))
    out = K.layers.Softmax()(inp, mask=m)
    mask = np.array([[1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 1]], np.float32)
    check(K, tmp_path, [inp, m], out, [x_seq(shape=(3, 6)), mask], round_trip=False)


def test_leaky_relu_keras2_alpha_is_written_as_negative_slope(keras2, tmp_path):
    inp = keras2.Input((T, F))
    ported = check(keras2, tmp_path, inp, keras2.layers.LeakyReLU(alpha=0.05)(inp), [x_seq()])
    assert ported.layers[0].config == {"negative_slope": pytest.approx(0.05)}


def names(K):
    return sorted(KERAS2 if K.__name__ == "tf_keras" else KERAS3)


def test_every_activation_name(K, tmp_path):
    """Each name as an Activation layer and as a Dense activation, one multi-output model."""
    inp = K.Input((T, F))
    outs = []
    for n in names(K):
        outs += [K.layers.Activation(n)(inp), K.layers.Dense(4, activation=n)(inp)]
    keras2_hard_sigmoid = K.__name__ == "tf_keras"
    labels = [f"{how} {n}" for n in names(K) for how in ("Activation", "Dense")]
    check(K, tmp_path, inp, outs, [x_seq() * 2], round_trip=not keras2_hard_sigmoid, labels=labels)


def test_keras_lists_no_activation_we_miss(K):
    listed = {
        n
        for n in dir(K.activations)
        if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
    }
    needs_arguments = {"threshold"}  # keras.activations.threshold(x, threshold, default_value)
    refused = {"sparsemax"}
    assert listed - set(names(K)) - needs_arguments - refused == set()


REFUSED = [
    ("BatchNormalization", {"axis": 0}, "BatchNormalization 'x': axis=0 is not supported"),
    ("BatchNormalization", {"axis": [1, 2]}, r"axis=\[1, 2\] is not supported \(one axis\)"),
    ("GroupNormalization", {"groups": 3}, "groups=3 is not supported"),
    ("LayerNormalization", {"axis": 3}, "axis=3 is not supported"),
    ("ReLU", {"threshold": -0.5}, "threshold=-0.5 is not supported"),
    ("LeakyReLU", {"alpha": 0.1, "negative_slope": 0.2}, "both alpha and negative_slope"),
    ("PReLU", {"shared_axes": [0]}, r"shared_axes=\[0\] is not supported"),
    ("Softmax", {"axis": 0}, "axis=0 is not supported"),
    ("UnitNormalization", {"order": 1}, "order=1 is not supported"),
    ("GroupNormalization", {"dtype": "float16"}, "dtype='float16' is not supported"),
]


@pytest.mark.parametrize(("cls", "cfg", "message"), REFUSED)
def test_refusals(cls, cfg, message):
    config = sequential(F, layer(cls, "x", **cfg), T=T)
    with pytest.raises(Refused, match=message):
        build_model(config)


def test_a_mask_keras_would_not_broadcast_is_refused():
    model = build_model(sequential(F, layer("Softmax", "x"), T=T))
    with pytest.raises(Refused, match=r"Softmax 'x': mask \(3, 5\) does not broadcast"):
        model.layers[0](torch.zeros(3, T, F), mask=torch.ones(3, T, dtype=torch.bool))


def test_onnx_in_onnxruntime():
    """Every kind behind an LSTM, traced with a free batch and time, equals torch."""
    needs_keras("onnx", "onnxruntime")
    import onnxruntime as ort

    kinds = [
        ("BatchNormalization", {}),
        ("LayerNormalization", {"center": False}),
        ("RMSNormalization", {"epsilon": 1e-6}),
        ("GroupNormalization", {"groups": 2}),
        ("UnitNormalization", {}),
        ("ReLU", {"max_value": 0.6, "negative_slope": 0.1, "threshold": 0.2}),
        ("PReLU", {"shared_axes": [1]}),
        ("LeakyReLU", {"negative_slope": 0.1}),
        ("ELU", {"alpha": 0.5}),
        ("ThresholdedReLU", {"theta": 0.1}),
        ("Rescaling", {"scale": 2.0, "offset": 0.1}),
        ("Softmax", {}),
    ]
    entries = [layer(c, f"k{i}", **o) for i, (c, o) in enumerate(kinds)]
    lstm = layer("LSTM", "lstm", units=4, return_sequences=True)
    model = build_model(sequential(3, lstm, *entries, layer("Dense", "d", units=2)))
    with torch.no_grad():
        model.layers[1].running_var.uniform_(0.3, 1.5)

    class Plain(torch.nn.Module):  # the model's forward alone (no state arguments)
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)

    buf = io.BytesIO()
    x = torch.randn(2, 5, 3)
    axes = {"x": {0: "batch", 1: "time"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Plain(model), (x,), buf, input_names=["x"], dynamic_axes=axes, dynamo=False
        )
    session = ort.InferenceSession(buf.getvalue())
    for shape in [(2, 5, 3), (3, 9, 3)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x).numpy()
        close(session.run(None, {"x": x.numpy()})[0], want, f"onnx {shape}")
