"""The converter without TensorFlow: layouts, shape checks, files."""

import json
import zipfile

import numpy as np
import pytest
import torch
from conftest import random_keras_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from torch_rnnsin.convert import (
    keras_shapes,
    keras_to_torch,
    load_keras_weights,
    save_keras_weights,
    torch_to_keras,
)
from torch_rnnsin.model import SinRNN


@pytest.mark.parametrize("hidden", [1, 3])
def test_layout_mapping(hidden):
    w = random_keras_weights(hidden, seed=hidden)
    m = keras_to_torch(w)
    assert m.hidden_size == hidden
    assert np.array_equal(m.rnn.weight_ih_l0.detach().numpy(), w[0].T)
    assert np.array_equal(m.rnn.weight_hh_l0.detach().numpy(), w[1].T)
    assert np.array_equal(m.rnn.bias_ih_l0.detach().numpy(), w[2])
    assert torch.all(m.rnn.bias_hh_l0 == 0)
    assert np.array_equal(m.dense.weight.detach().numpy(), w[3].T)
    for a, b in zip(torch_to_keras(m), w, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_back_sums_the_two_torch_biases():
    m = SinRNN(2)
    with torch.no_grad():
        m.rnn.bias_ih_l0.copy_(torch.tensor([1.0, 2.0]))
        m.rnn.bias_hh_l0.copy_(torch.tensor([0.5, -1.0]))
    assert np.allclose(torch_to_keras(m)[2], [1.5, 1.0])


@st.composite
def keras_weight_lists(draw):
    hidden = draw(st.integers(1, 6))
    floats = st.floats(-10, 10, width=32)
    return [draw(arrays(np.float32, s, elements=floats)) for s in keras_shapes(hidden)]


@settings(max_examples=60, deadline=None)
@given(keras_weight_lists())
def test_round_trip_is_identity(w):
    back = torch_to_keras(keras_to_torch(w))
    for a, b in zip(back, w, strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)


def test_shape_errors_name_array_and_shapes():
    w = random_keras_weights(2, seed=0)
    bad = list(w)
    bad[1] = np.zeros((3, 3), np.float32)
    with pytest.raises(
        ValueError, match=r"RNN recurrent_kernel: expected shape \(2, 2\), got \(3, 3\)"
    ):
        keras_to_torch(bad)
    bad = list(w)
    bad[4] = np.zeros((2,), np.float32)
    with pytest.raises(ValueError, match=r"Dense bias: expected shape \(1,\), got \(2,\)"):
        keras_to_torch(bad)
    with pytest.raises(ValueError, match="expected 5 arrays"):
        keras_to_torch(w[:4])
    with pytest.raises(ValueError, match=r"RNN kernel -> rnn.weight_ih_l0.*\(3, 1\).*\(2, 1\)"):
        keras_to_torch(w, model=SinRNN(3))
    nan = list(w)
    nan[2] = np.array([np.nan, 0], np.float32)
    with pytest.raises(ValueError, match="RNN bias: values must be finite"):
        keras_to_torch(nan)


@pytest.mark.parametrize("suffix", [".npz", ".weights.h5"])
def test_file_round_trip_without_tensorflow(tmp_path, suffix):
    w = random_keras_weights(3, seed=5)
    path = tmp_path / f"w{suffix}"
    save_keras_weights(w, path)
    got = load_keras_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(got, w, strict=True))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_dot_keras_zip_read_with_zipfile(tmp_path):
    w = random_keras_weights(2, seed=2)
    save_keras_weights(w, tmp_path / "model.weights.h5")
    config = {
        "class_name": "Functional",
        "config": {
            "layers": [
                {"class_name": "InputLayer"},
                {"class_name": "SimpleRNN"},
                {"class_name": "Dense"},
            ]
        },
    }
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(tmp_path / "model.weights.h5", "model.weights.h5")
    got = load_keras_weights(tmp_path / "m.keras")
    assert all(np.array_equal(a, b) for a, b in zip(got, w, strict=True))
    config["config"]["layers"][1]["class_name"] = "LSTM"
    with zipfile.ZipFile(tmp_path / "lstm.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(tmp_path / "model.weights.h5", "model.weights.h5")
    with pytest.raises(ValueError, match=r"not a SimpleRNN \+ Dense model: found layers.*LSTM"):
        load_keras_weights(tmp_path / "lstm.keras")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_keras_weights(tmp_path / "missing.npz")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match="junk.weights.h5: not a readable HDF5"):
        load_keras_weights(junk)
    np.savez(tmp_path / "few.npz", *random_keras_weights(1, 0)[:3])
    with pytest.raises(ValueError, match="expected 5 arrays.*got 3"):
        load_keras_weights(tmp_path / "few.npz")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown weights format"):
        load_keras_weights(tmp_path / "w.txt")


def test_npz_is_never_unpickled(tmp_path):
    obj = np.array([{"a": 1}] * 5, dtype=object)
    np.savez(tmp_path / "pickled.npz", obj, obj, obj, obj, obj)
    with pytest.raises(ValueError, match="pickle"):
        load_keras_weights(tmp_path / "pickled.npz")
