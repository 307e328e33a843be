"""Convolution, pooling and shape kinds against Keras itself: Keras 3 .keras files and Keras 2
(tf_keras) .h5 files, each ported and compared within 1e-5; Keras 3 round trips torch -> Keras."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import needs_keras
from port_helpers import keras_predict

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.kinds.base import Layer, Spec, build
from torch_rnnsin.port.model import load_keras_model, save_keras_model


def randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    ws = []
    for w, v in zip(model.get_weights(), model.weights, strict=True):
        a = rng.uniform(-0.8, 0.8, size=w.shape)
        if "variance" in v.name:
            a = np.abs(a) + 0.2
        ws.append(a.astype(np.float32))
    model.set_weights(ws)


def torch_run(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    return y.numpy()


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))


def cross_check(mod, tmp_path, shape, layers, seed=0, x=None, round_trip=True):
    """Build Input(shape) -> layers in Keras module ``mod``, port its file, compare outputs."""
    inp = mod.Input(shape=shape)
    y = inp
    for lyr in layers:
        y = lyr(y)
    model = mod.Model(inp, y)
    randomize(model, seed)
    if x is None:
        x = np.random.default_rng(seed + 1).normal(size=(2, *shape)).astype(np.float32)
    eager = not any(getattr(lyr, "data_format", "") == "channels_first" for lyr in layers)
    want = np.asarray(keras_predict(model, x, eager))  # see keras_predict's channels_first
    path = tmp_path / ("m.keras" if mod.__name__ == "keras" else "m.h5")
    model.save(path)
    ported = load_keras_model(path)
    close(torch_run(ported, x), want)
    if round_trip and mod.__name__ == "keras":
        back = save_keras_model(ported, tmp_path / "back.keras")
        import keras

        again = keras.models.load_model(back)
        close(np.asarray(keras_predict(again, x, eager)), want)
    return ported


@pytest.fixture(params=["keras3", "keras2"])
def K(request, keras3):
    return keras3 if request.param == "keras3" else request.getfixturevalue("keras2")


CONV1D = [
    {},
    {"padding": "same", "strides": 2},
    {"padding": "same", "kernel_size": 4, "strides": 3},
    {"padding": "causal", "dilation_rate": 2},
    {"groups": 2, "use_bias": False, "activation": "relu"},
    {"data_format": "channels_first", "padding": "same"},
]


@pytest.mark.parametrize("opts", CONV1D)
def test_conv1d(K, tmp_path, opts):
    L = K.layers
    kw = {"filters": 4, "kernel_size": 3, **opts}
    cross_check(K, tmp_path, (9, 4), [L.Conv1D(**kw), L.LSTM(3, return_sequences=True)])


POOL1D = [
    ("MaxPooling1D", {}),
    ("MaxPooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling1D", {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("AveragePooling1D", {"pool_size": 2, "strides": 1, "data_format": "channels_first"}),
]


@pytest.mark.parametrize(("cls", "opts"), POOL1D)
def test_pool1d(K, tmp_path, cls, opts):
    L = K.layers
    layers = [L.Conv1D(4, 2, padding="same"), getattr(L, cls)(**opts), L.GRU(3)]
    cross_check(K, tmp_path, (9, 3), layers)


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pool1d(K, tmp_path, keepdims):
    L = K.layers
    inp = K.Input(shape=(7, 3))
    h = L.Conv1D(4, 3, padding="same")(inp)
    ys = [
        L.GlobalMaxPooling1D(keepdims=keepdims)(h),
        L.GlobalAveragePooling1D(keepdims=keepdims, data_format="channels_first")(h),
        L.GlobalAveragePooling1D(keepdims=keepdims)(h),
    ]
    model = K.Model(inp, ys)
    randomize(model)
    x = np.random.default_rng(1).normal(size=(2, 7, 3)).astype(np.float32)
    path = tmp_path / ("m.keras" if K.__name__ == "keras" else "m.h5")
    wants = keras_predict(model, x)
    model.save(path)
    with torch.no_grad():
        gots = load_keras_model(path)(torch.from_numpy(x))
    assert len(gots) == 3
    for got, want in zip(gots, wants, strict=True):
        close(got.numpy(), np.asarray(want))


def test_global_average_pool1d_skips_masked_steps(keras2, keras3, tmp_path):
    """Keras 2 file with Masking in front; Keras 3 (whose files record the mask's ops as
    op nodes the graph does not port yet) against the layer called with the same mask."""
    x = np.random.default_rng(3).normal(size=(3, 6, 2)).astype(np.float32)
    x[0, 4:] = 0.0  # masked tail
    x[2, 1] = 0.0  # masked middle step
    L = keras2.layers
    ported = cross_check(
        keras2, tmp_path, (6, 2), [L.Masking(0.0), L.GlobalAveragePooling1D()], x=x
    )
    assert np.allclose(torch_run(ported, x)[0], x[0, :4].mean(axis=0), atol=1e-6)
    mask = (x != 0).any(-1)
    for fmt, xin in (("channels_last", x), ("channels_first", x.transpose(0, 2, 1).copy())):
        k3 = keras3.layers.GlobalAveragePooling1D(data_format=fmt, keepdims=True)
        want = np.asarray(k3(xin, mask=mask))
        block = build(Layer("GlobalAveragePooling1D", "g", k3.get_config()), [Spec(xin.shape[1:])])
        with torch.no_grad():
            got = block(torch.from_numpy(xin), mask=torch.from_numpy(mask))
        close(got.numpy(), want)


def test_cnn_lstm_with_flatten_reshape_permute(K, tmp_path):
    """A CRNN front-end: Conv2D -> MaxPooling2D -> Permute -> Reshape(-1) -> LSTM; Flatten."""
    L = K.layers
    layers = [
        L.Conv2D(3, 3, padding="same", activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Permute((2, 1, 3)),
        L.Reshape((-1, 9)),
        L.LSTM(4, return_sequences=True),
        L.Flatten(),
    ]
    cross_check(K, tmp_path, (6, 8, 2), layers)


def test_lstm_autoencoder_with_repeat_vector(K, tmp_path):
    L = K.layers
    layers = [L.LSTM(4), L.RepeatVector(5), L.LSTM(3, return_sequences=True)]
    cross_check(K, tmp_path, (5, 2), layers)


def test_flatten_channels_first(K, tmp_path):
    L = K.layers
    cross_check(K, tmp_path, (3, 4, 2), [L.Flatten(data_format="channels_first")])


def test_pad_crop_upsample(K, tmp_path):
    L = K.layers
    layers = [
        L.ZeroPadding2D(((1, 2), (0, 1))),
        L.Cropping2D(((0, 1), (2, 0))),
        L.UpSampling2D((2, 1)),
        L.Reshape((-1, 2)),
        L.ZeroPadding1D((2, 1)),
        L.Cropping1D((1, 0)),
        L.UpSampling1D(3),
        L.GRU(3),
    ]
    cross_check(K, tmp_path, (4, 3, 2), layers)


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_conv2d_pool2d(K, tmp_path, fmt):
    L = K.layers
    layers = [
        L.Conv2D(4, (3, 2), strides=(2, 1), padding="same", data_format=fmt),
        L.AveragePooling2D((3, 2), strides=(2, 2), padding="same", data_format=fmt),
        L.Conv2D(2, 2, dilation_rate=(1, 2), padding="same", data_format=fmt),
        L.MaxPooling2D((2, 2), strides=1, data_format=fmt),
        L.GlobalMaxPooling2D(data_format=fmt),
    ]
    shape = (7, 6, 3) if fmt == "channels_last" else (3, 7, 6)
    cross_check(K, tmp_path, shape, layers)


@pytest.mark.parametrize(
    ("cls", "cfg", "option"),
    [
        ("Conv1D", {"filters": 2, "kernel_size": [3], "wobble": 1}, "wobble=1"),
        ("Conv2D", {"filters": 2, "kernel_size": [3, 3], "padding": "causal"}, "padding='causal'"),
        ("UpSampling2D", {"size": [2, 2], "interpolation": "bilinear"}, "interpolation='bilinear'"),
        ("Reshape", {"target_shape": [-1, -1]}, "target_shape=[-1, -1]"),
    ],
)
def test_refusals_name_class_layer_and_option(cls, cfg, option):
    shape = (5, 4, 2) if cls.endswith("2D") else (5, 2)
    with pytest.raises(Refused, match="^" + re.escape(f"{cls} 'c': {option} is not supported")):
        build(Layer(cls, "c", cfg), [Spec(shape)])


DEPTHWISE = [
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "strides": 2}),
    ("SeparableConv1D", {"filters": 5, "kernel_size": 3, "dilation_rate": 2, "activation": "tanh"}),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "use_bias": False, "padding": "same"}),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2}),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 4, "strides": 3, "padding": "same"}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 2, "strides": 3}),
]


@pytest.mark.parametrize(("cls", "opts"), DEPTHWISE)
def test_depthwise_separable_transpose_1d(K, tmp_path, cls, opts):
    L = K.layers
    cross_check(K, tmp_path, (8, 3), [getattr(L, cls)(**opts), L.LSTM(2)])


def test_depthwise_separable_2d(K, tmp_path):
    L = K.layers
    layers = [
        L.DepthwiseConv2D((3, 2), depth_multiplier=2, padding="same", strides=(2, 1)),
        L.SeparableConv2D(4, 2, depth_multiplier=2, activation="relu"),
        L.Flatten(),
    ]
    cross_check(K, tmp_path, (6, 5, 2), layers)


def test_conv3d_pool3d(K, tmp_path):
    L = K.layers
    layers = [
        L.Conv3D(3, (2, 3, 2), padding="same", strides=(1, 2, 1)),
        L.MaxPooling3D((1, 2, 2), padding="same"),
        L.AveragePooling3D((2, 1, 1)),
        L.ZeroPadding3D(((0, 1), (1, 0), 1)),
        L.Cropping3D(((1, 0), (0, 1), (1, 1))),
        L.UpSampling3D((1, 2, 1)),
        L.GlobalAveragePooling3D(keepdims=True),
    ]
    cross_check(K, tmp_path, (4, 5, 4, 2), layers)


def test_time_distributed_cnn_over_frames(K, tmp_path):
    """CNN-LSTM: a Conv1D + pooling + Flatten front-end on every frame, then an LSTM."""
    L = K.layers
    layers = [
        L.TimeDistributed(L.Conv1D(3, 2, activation="relu")),
        L.TimeDistributed(L.MaxPooling1D(2)),
        L.TimeDistributed(L.Flatten()),
        L.LSTM(3),
    ]
    cross_check(K, tmp_path, (4, 6, 2), layers)


class _Plain(torch.nn.Module):
    """x -> y, the ported model's forward without the state arguments."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


def test_onnx_any_length(keras3, tmp_path):
    """'same' pads with strides depend on the length: the ONNX graph computes them from it."""
    needs_keras("onnx", "onnxruntime")
    import warnings

    import onnxruntime as ort

    L = keras3.layers
    inp = keras3.Input(shape=(None, 2))
    y = inp
    for lyr in [
        L.Conv1D(4, 3, padding="same", strides=2),
        L.AveragePooling1D(3, strides=2, padding="same"),
        L.Conv1DTranspose(3, 4, strides=3, padding="same"),
        L.DepthwiseConv1D(3, strides=2, padding="same"),
        L.LSTM(3),
    ]:
        y = lyr(y)
    model = keras3.Model(inp, y)
    randomize(model)
    model.save(tmp_path / "m.keras")
    ported = load_keras_model(tmp_path / "m.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Plain(ported),
            (torch.zeros(2, 9, 2),),
            tmp_path / "m.onnx",
            input_names=["x"],
            dynamic_axes={"x": {0: "b", 1: "t"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for T in (5, 8, 11):
        x = np.random.default_rng(T).normal(size=(2, T, 2)).astype(np.float32)
        close(session.run(None, {"x": x})[0], np.asarray(keras_predict(model, x)))
