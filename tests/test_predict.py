"""torch's two prediction modes against the NumPy witness written from the equations."""

import numpy as np
import pytest
from conftest import random_keras_weights

from torch_rnnsin.lesson.convert import keras_to_torch
from torch_rnnsin.lesson.data import sine_wave
from torch_rnnsin.lesson.numpy_ref import predict_stateful_numpy, predict_stateless_numpy
from torch_rnnsin.lesson.predict import predict_stateful, predict_stateless


@pytest.mark.parametrize("hidden", [1, 3])
@pytest.mark.parametrize("seq_len", [1, 2, 5])
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_torch_equals_numpy_witness(hidden, seq_len, noise):
    values = sine_wave(10, 30, noise, seed=hidden + seq_len)["sin_t"].to_numpy()
    w = random_keras_weights(hidden, seed=10 * hidden + seq_len)
    model = keras_to_torch(w)
    p, h = predict_stateless(model, values, seq_len)
    pn, hn = predict_stateless_numpy(w, values, seq_len)
    assert p.shape == (len(values),)
    assert h.shape == (len(values), hidden)
    assert np.isnan(p[:seq_len]).all()
    assert np.isnan(h[:seq_len]).all()
    np.testing.assert_allclose(p, pn, atol=1e-6, rtol=0)
    np.testing.assert_allclose(h, hn, atol=1e-6, rtol=0)
    p, h = predict_stateful(model, values)
    pn, hn = predict_stateful_numpy(w, values)
    assert p[0] == np.float32(values[0])
    assert np.all(h[0] == 0)
    np.testing.assert_allclose(p, pn, atol=1e-6, rtol=0)
    np.testing.assert_allclose(h, hn, atol=1e-6, rtol=0)


def test_modes_differ_and_agree_where_they_must():
    values = sine_wave(10, 20)["sin_t"].to_numpy()
    w = random_keras_weights(2, seed=1)
    model = keras_to_torch(w)
    _sl, hsl = predict_stateless(model, values, seq_len=1)
    _sf, hsf = predict_stateful(model, values)
    # with seq_len 1, the stateless state at t is one step from zero; stateful equals it only at t = 1
    assert np.allclose(hsl[1], hsf[1])
    assert not np.allclose(hsl[5:], hsf[5:])


def test_predict_rejects_nan_series():
    model = keras_to_torch(random_keras_weights(1, seed=0))
    with pytest.raises(ValueError, match="nan"):
        predict_stateful(model, np.array([0.0, np.nan, 1.0]))


def test_prediction_mse_counts_only_predicted_entries():
    from torch_rnnsin.lesson.metrics import prediction_mse

    values = np.array([0.0, 1.0, 2.0, 3.0])
    stateless = np.array([np.nan, np.nan, 2.5, 3.0])
    stateful = np.array([0.0, 2.0, 2.0, 3.0])  # pred[0] is x_0 itself: not counted
    assert prediction_mse(stateless, values, "stateless", 2) == pytest.approx(0.125)
    assert prediction_mse(stateful, values, "stateful", 2) == pytest.approx(1 / 3)
