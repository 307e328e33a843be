"""The centrepiece: the same weights in Keras, torch and the NumPy witness give the
same predictions and hidden states (≤ 1e-5), both modes; the same start and
batches give the same trained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import random_keras_weights

from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.convert import (
    keras_to_torch,
    load_keras_weights,
    save_keras_weights,
    torch_to_keras,
)
from torch_rnnsin.lesson.data import make_windows, sine_wave, split_series
from torch_rnnsin.lesson.model import SinRNN
from torch_rnnsin.lesson.numpy_ref import predict_stateful_numpy, predict_stateless_numpy
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.predict import predict_stateful, predict_stateless
from torch_rnnsin.lesson.training import stateless_epoch

pytestmark = pytest.mark.keras
TOL = 1e-5


def assert_close(a, b, what):
    assert a.shape == b.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN entries differ"
    err = np.nanmax(np.abs(a.astype(np.float64) - b))
    assert err <= TOL, f"{what}: max abs difference {err:.2e} > {TOL}"


@pytest.mark.parametrize(
    ("hidden", "seq_len", "noise"),
    [(1, 1, 0.0), (1, 2, 0.0), (1, 5, 0.3), (3, 2, 0.3), (3, 3, 0.0), (3, 10, 0.2)],
)
def test_keras_torch_numpy_agree_both_modes(kr, hidden, seq_len, noise):
    values = sine_wave(10, 12, noise, seed=seq_len)["sin_t"].to_numpy().astype(np.float32)
    w = random_keras_weights(hidden, seed=100 + 10 * hidden + seq_len)
    kmodel = kr.define_model(seq_len, hidden=hidden)
    kmodel.set_weights(w)
    tmodel = keras_to_torch(torch_to_keras(keras_to_torch(kmodel.get_weights())))
    for mode, kf, tf, nf in (
        (
            "stateless",
            lambda: kr.predict_stateless(kmodel, values, seq_len),
            lambda: predict_stateless(tmodel, values, seq_len),
            lambda: predict_stateless_numpy(w, values, seq_len),
        ),
        (
            "stateful",
            lambda: kr.predict_stateful(kmodel, values),
            lambda: predict_stateful(tmodel, values),
            lambda: predict_stateful_numpy(w, values),
        ),
    ):
        (kp, kh), (tp, th), (npp, nh) = kf(), tf(), nf()
        assert_close(kp, tp, f"{mode} pred keras vs torch")
        assert_close(kh, th, f"{mode} hidden keras vs torch")
        assert_close(kp, npp, f"{mode} pred keras vs numpy")
        assert_close(kh, nh, f"{mode} hidden keras vs numpy")


def test_weights_h5_written_by_torch_loads_in_keras(kr, tmp_path):
    w = random_keras_weights(3, seed=9)
    save_keras_weights(w, tmp_path / "t.weights.h5")
    km = kr.define_model(2, hidden=3)
    km.load_weights(tmp_path / "t.weights.h5")
    for a, b in zip(km.get_weights(), w, strict=True):
        assert np.array_equal(a, b)


def test_an_unstamped_weights_file_is_refused(kr, tmp_path):
    """Keras's own save_weights holds no architecture: another model's weights (relu,
    go_backwards, ...) would read as the lesson's, so it needs the stamp or an architecture."""
    km = kr.define_model(2, hidden=3)
    km.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(
        ValueError, match=r"m.weights.h5: a weights-only file holds no architecture"
    ):
        load_keras_weights(tmp_path / "m.weights.h5")


@pytest.mark.parametrize("kind", ["weights.h5", "keras", "h5"])
def test_keras_files_load_in_torch(kr, tmp_path, kind):
    """The lesson's files as Keras 3 writes them (save_weights, stamped as the Keras
    reference stamps its own; save; legacy .h5 save)."""
    import h5py

    from torch_rnnsin.lesson.convert import lesson_config
    from torch_rnnsin.port.io import stamp_weights_file

    km = kr.define_model(2, hidden=3)
    km.set_weights(random_keras_weights(3, seed=4))
    path = tmp_path / f"m.{kind}"
    km.save_weights(path) if kind == "weights.h5" else km.save(path)
    if kind == "weights.h5":
        with h5py.File(path, "a") as h5:
            stamp_weights_file(h5, lesson_config(3))
    got = load_keras_weights(path)
    for a, b in zip(got, km.get_weights(), strict=True):
        assert np.array_equal(a, b)
    # and back: torch -> .weights.h5 -> Keras is the same model again
    save_keras_weights(torch_to_keras(keras_to_torch(got)), tmp_path / "back.weights.h5")
    km2 = kr.define_model(2, hidden=3)
    km2.load_weights(tmp_path / "back.weights.h5")
    assert all(
        np.array_equal(a, b) for a, b in zip(km2.get_weights(), km.get_weights(), strict=True)
    )


def test_keras_file_of_another_model_is_refused(kr, tmp_path):
    import keras

    inp = keras.Input((2, 1))
    m = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(2)(inp)))
    m.save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match=r"not a SimpleRNN \+ Dense model.*LSTM"):
        load_keras_weights(tmp_path / "lstm.keras")


def _reference_data(cycles=500):
    train, test = split_series(sine_wave(10, cycles)["sin_t"].to_numpy())
    return make_windows(train, 2), make_windows(test, 2)


def test_training_parity_no_shuffle_reference_run(kr):
    """60 epochs of the reference run (420 RMSprop steps, the last batch 148 windows)."""
    (X, y), val = _reference_data()
    torch.manual_seed(1)
    init = torch_to_keras(SinRNN(1))
    kmodel, hist = kr.train(X, y, val, epochs=60, shuffle=False, initial_weights=init)
    model = keras_to_torch(init)
    opt = KerasRMSprop([p for p in model.parameters() if p.requires_grad])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    losses = [stateless_epoch(model, opt, Xt, yt, 600) for _ in range(60)]
    got, want = torch_to_keras(model), kmodel.get_weights()
    moved = max(np.abs(a - b).max() for a, b in zip(want, init, strict=True))
    assert moved > 1e-2  # training really moved the weights
    for name, a, b in zip(
        ("kernel", "recurrent", "bias", "dense kernel", "dense bias"), got, want, strict=True
    ):
        assert np.abs(a - b).max() <= TOL, f"{name}: {a} vs keras {b}"
    np.testing.assert_allclose(losses, hist["loss"], rtol=1e-4)


def test_lightning_run_reaches_keras_weights(kr, tmp_path):
    """The whole train.py path (Lightning, DataModule, checkpointing) from --init-keras."""
    from torch_rnnsin.lesson.run import train_run

    (X, y), val = _reference_data(cycles=100)
    init = random_keras_weights(1, seed=3, scale=0.5)
    init[1] = np.array([[1.0]], np.float32)
    cfg = TrainConfig(cycles=100, epochs=40, shuffle=False, batch_size=100)
    train_run(cfg, tmp_path / "run", init_weights=init, progress=False)
    got = load_keras_weights(tmp_path / "run" / "keras_weights.npz")
    kmodel, _ = kr.train(X, y, val, epochs=40, batch_size=100, shuffle=False, initial_weights=init)
    for a, b in zip(got, kmodel.get_weights(), strict=True):
        assert np.abs(a - b).max() <= TOL


def test_keras_ref_reads_back_every_setting_compare_hands_it(kr, monkeypatch):
    from keras_ref.__main__ import parser
    from torch_rnnsin.lesson.compare import keras_command
    from torch_rnnsin.lesson.flags import config_from

    for cfg in (
        TrainConfig(lr=0.1, shuffle=False, seed=7, hidden=3, batch_size=17, noise=0.1),
        TrainConfig(train_mode="stateful", targets="seq", streams=7, epochs=3, seq_len=4),
    ):
        monkeypatch.delenv("RNNSIN_KERAS_RUN_CMD", raising=False)  # the session's warm one
        cmd = keras_command(cfg, "o", None, None)
        assert cmd[1:3] == ["-m", "keras_ref"]
        got = config_from(parser().parse_args(cmd[3:]), accelerator=cfg.accelerator)
        assert got == cfg
    assert float(kr.define_model(2, lr=0.05).optimizer.learning_rate) == pytest.approx(0.05)


def test_compare_command_trains_keras_and_agrees(kr, tmp_path):
    import json

    from conftest import run_cli, run_module

    out = tmp_path / "cmp"
    r = run_module(
        "compare",
        "--cycles",
        "40",
        "--epochs",
        "5",
        "--hidden",
        "2",
        "--noise",
        "0.2",
        "--lr",
        "0.01",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "Keras vs torch" in r.stdout
    assert "within the tolerance" in r.stdout
    res = json.loads((out / "compare.json").read_text())
    assert res["ok"]
    assert res["max_diff"] <= 1e-5
    assert len(res["rows"]) == 4
    assert json.loads((out / "keras_metrics.json").read_text())["lr"] == pytest.approx(0.01)
    # the exit-1 path on Keras's own output, one hidden state doctored by 2e-5
    from torch_rnnsin.lesson.compare import evaluate

    with np.load(out / "keras_predictions.npz") as z:
        doctored = dict(z)
    doctored["stateless_hidden"][7, 1] += 2e-5
    np.savez(out / "keras_predictions.npz", **doctored)
    cfg = TrainConfig(cycles=40, epochs=5, hidden=2, noise=0.2, lr=0.01)
    assert evaluate(out, cfg) == 1
    res = json.loads((out / "compare.json").read_text())
    assert not res["ok"]
    assert res["max_diff"] == pytest.approx(2e-5, rel=0.2)
    # and from a given Keras file (train.py --keras --keras-model is the same command)
    km = kr.define_model(3, hidden=2)
    km.set_weights(random_keras_weights(2, seed=8))
    km.save(tmp_path / "given.keras")
    r = run_cli(
        "--keras",
        "--keras-model",
        str(tmp_path / "given.keras"),
        "--seq-len",
        "3",
        "--cycles",
        "40",
        "--out",
        str(tmp_path / "cmp2"),
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "cmp2" / "compare.json").read_text())
    assert res["ok"]
    assert res["max_diff"] <= 1e-5
    got = load_keras_weights(tmp_path / "cmp2" / "keras.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(got, km.get_weights(), strict=True))
