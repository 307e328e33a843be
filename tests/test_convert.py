"""The converter without TensorFlow: layouts, shape checks, files."""

import json
import re
import zipfile

import numpy as np
import pytest
import torch
from conftest import random_keras_weights
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from torch_rnnsin.lesson.convert import (
    keras_shapes,
    keras_to_torch,
    lesson_config,
    load_keras_weights,
    save_keras_weights,
    torch_to_keras,
)
from torch_rnnsin.lesson.model import SinRNN


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
        assert a.shape == b.shape
        assert np.array_equal(a, b)


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
        assert a.shape == b.shape
        assert np.array_equal(a, b)


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
    model = SinRNN(3)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"RNN kernel: expected shape \(1, 3\), got \(1, 2\)"):
        keras_to_torch(w, model=model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
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


def write_keras_zip(path, config, weights_h5):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(weights_h5, "model.weights.h5")
    return path


def test_dot_keras_zip_read_with_zipfile(tmp_path):
    w = random_keras_weights(2, seed=2)
    save_keras_weights(w, tmp_path / "model.weights.h5")
    config = lesson_config(2)
    got = load_keras_weights(
        write_keras_zip(tmp_path / "m.keras", config, tmp_path / "model.weights.h5")
    )
    assert all(np.array_equal(a, b) for a, b in zip(got, w, strict=True))
    config["config"]["layers"][1]["class_name"] = "LSTM"
    lstm = write_keras_zip(tmp_path / "lstm.keras", config, tmp_path / "model.weights.h5")
    with pytest.raises(ValueError, match=r"lstm.keras: .*"):
        load_keras_weights(lstm)


LESSON_CHANGES = [
    (
        1,
        {"activation": "relu"},
        "SimpleRNN 'RNN': activation='relu' — the lesson model has activation='tanh'",
    ),
    (1, {"go_backwards": True}, "SimpleRNN 'RNN': go_backwards=True"),
    (1, {"return_sequences": True}, "SimpleRNN 'RNN': return_sequences=True"),
    (1, {"use_bias": False}, "SimpleRNN 'RNN': use_bias=False"),
    (2, {"activation": "sigmoid"}, "Dense 'dense': activation='sigmoid'"),
    (2, {"units": 2}, "Dense 'dense': units=2"),
    (0, {"batch_shape": [None, None, 2]}, "SimpleRNN 'RNN': 2 input features"),
    (1, {"activation": None}, "SimpleRNN 'RNN': activation='linear' — the lesson model has"),
]


@pytest.mark.parametrize(("index", "change", "message"), LESSON_CHANGES)
def test_a_model_that_is_not_the_lessons_is_refused_naming_the_option(
    tmp_path, index, change, message
):
    w = random_keras_weights(2, seed=2)
    save_keras_weights(w, tmp_path / "model.weights.h5")
    config = lesson_config(2)
    config["config"]["layers"][index]["config"].update(change)
    path = write_keras_zip(tmp_path / "m.keras", config, tmp_path / "model.weights.h5")
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        load_keras_weights(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {message}"), msg
    assert "\n" not in msg
    if "the lesson model" in msg:
        assert msg.endswith("port it with load_keras_model instead")


def test_extra_layers_refused(tmp_path):
    w = random_keras_weights(2, seed=2)
    save_keras_weights(w, tmp_path / "model.weights.h5")
    config = lesson_config(2)
    config["config"]["layers"].insert(
        2, {"class_name": "Dropout", "config": {"name": "d", "rate": 0.1}}
    )
    path = write_keras_zip(tmp_path / "m.keras", config, tmp_path / "model.weights.h5")
    with pytest.raises(ValueError, match=r"found layers \['SimpleRNN', 'Dropout', 'Dense'\]"):
        load_keras_weights(path)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array([[1e39, 0.5]]), r"RNN kernel: values must be finite float32"),
        (np.array([[1 + 2j, 0.5]]), r"RNN kernel: expected real numbers, got dtype complex128"),
    ],
)
def test_values_beyond_float32_or_complex_are_refused(array, match):
    w = random_keras_weights(2, seed=2)
    with pytest.raises(ValueError, match=match):
        keras_to_torch([array, *w[1:]])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape("missing.npz")):
        load_keras_weights(tmp_path / "missing.npz")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError, match=r"junk.weights.h5: \S"):
        load_keras_weights(junk)
    np.savez(tmp_path / "few.npz", *random_keras_weights(1, 0)[:3])
    with pytest.raises(ValueError, match=r"expected 5 arrays.*got 3"):
        load_keras_weights(tmp_path / "few.npz")
    (tmp_path / "w.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown weights format"):
        load_keras_weights(tmp_path / "w.txt")


def test_npz_is_never_unpickled(tmp_path):
    obj = np.array([{"a": 1}] * 5, dtype=object)
    np.savez(tmp_path / "pickled.npz", obj, obj, obj, obj, obj)
    with pytest.raises(ValueError, match="pickle"):
        load_keras_weights(tmp_path / "pickled.npz")


# --- lesson files written by Keras itself ------------------------------------------


@pytest.mark.keras
def test_lesson_file_written_by_keras_2_loads(keras_models):
    """Keras 3's files: tests/test_keras_parity.py (the lesson's own Keras model)."""
    case = keras_models.cases["srnn_tanh"]  # Input(F=1) -> SimpleRNN(3) -> Dense(1)
    path, _ = case.source("k2_h5")
    got = load_keras_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(got, case.weights, strict=True))


@pytest.mark.keras
def test_keras2_relu_file_refused_naming_the_option(keras_models):
    path, _ = keras_models.cases["srnn_relu"].source("k2_h5")
    with pytest.raises(ValueError, match=r"k2.h5: SimpleRNN '\w+': activation='relu' — the"):
        load_keras_weights(path)
