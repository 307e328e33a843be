"""Convolution, pooling and shape kinds against Keras itself: Keras 3 .keras files and Keras 2
(tf_keras) .h5 files, each ported and compared within 1e-5; Keras 3 round trips torch -> Keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import needs_keras

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.model import load_keras_model, save_keras_model


@pytest.fixture(scope="session")
def tfk(keras3):
    needs_keras("tf_keras")
    import tf_keras

    return tf_keras


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
    want = np.asarray(model.predict(x, verbose=0))
    path = tmp_path / ("m.keras" if mod.__name__ == "keras" else "m.h5")
    model.save(path)
    ported = load_keras_model(path)
    close(torch_run(ported, x), want)
    if round_trip and mod.__name__ == "keras":
        back = save_keras_model(ported, tmp_path / "back.keras")
        import keras

        again = keras.models.load_model(back)
        close(np.asarray(again.predict(x, verbose=0)), want)
    return ported


@pytest.fixture(params=["keras3", "keras2"])
def K(request, keras3):
    return keras3 if request.param == "keras3" else request.getfixturevalue("tfk")


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


def test_conv1d_refuses_an_unknown_option():
    from torch_rnnsin.port.kinds.base import Layer, Spec, build

    cfg = {"filters": 2, "kernel_size": [3], "wobble": 1}
    with pytest.raises(Refused, match=r"^Conv1D 'c': wobble=1 is not supported"):
        build(Layer("Conv1D", "c", cfg), [Spec((5, 2))])
