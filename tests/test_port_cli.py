"""``port`` and ``inspect``: exit 0 / 1 / 2, one-line errors, never a file left on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_module
from port_helpers import keras_arrays, layer, one_error_line, sequential

from torch_rnnsin import load_keras_model, save_keras_model
from torch_rnnsin.cli import main
from torch_rnnsin.port import check
from torch_rnnsin.port import io as formats
from torch_rnnsin.port.model import build_model


@pytest.fixture
def keras_file(tmp_path):
    """A .keras file (written without Keras) of LSTM(4) -> GRU(3) -> Dense(1), 2 features."""
    rng = np.random.default_rng(0)
    cfg = sequential(
        2,
        layer("LSTM", "lstm", units=4, return_sequences=True),
        layer("GRU", "gru", units=3),
        layer("Dense", "dense", units=1),
    )
    weights = {
        "lstm": keras_arrays("LSTM", 2, 4, rng),
        "gru": keras_arrays("GRU", 4, 3, rng),
        "dense": keras_arrays("Dense", 3, 1, rng),
    }
    path = tmp_path / "m.keras"
    save_keras_model(build_model(cfg, weights), path)
    return path


def test_port_converts_every_way_exactly(keras_file, tmp_path, capsys):
    ref = load_keras_model(keras_file)
    x = torch.randn(2, 5, 2)
    chain = [("m.keras", "m.pt"), ("m.pt", "m.safetensors"), ("m.safetensors", "m.weights.h5")]
    for a, b in chain:
        assert main(["port", str(tmp_path / a), str(tmp_path / b)]) == 0
        assert f"wrote {tmp_path / b}" in capsys.readouterr().out
    (tmp_path / "arch.json").write_text(json.dumps(ref.keras_config()))
    argv = ["port", str(tmp_path / "m.weights.h5"), str(tmp_path / "back.keras")]
    assert main([*argv, "--arch", str(tmp_path / "arch.json")]) == 0
    for name in ("m.pt", "m.safetensors", "back.keras"):
        got = load_keras_model(tmp_path / name)
        with torch.no_grad():
            assert torch.equal(got(x), ref(x)), name


def test_inspect_prints_the_layer_table(keras_file, capsys):
    assert main(["inspect", str(keras_file)]) == 0
    out = capsys.readouterr().out
    assert "state sizes [4, 4, 3]" in out
    assert "kernel (2, 16) -> layers.0.cells.0.rnn.weight_ih_l0 (16, 2)  transposed" in out
    assert "bias[1] (9,) -> layers.1.cells.0.rnn.bias_hh_l0 (9,)  gates zrh->rzn" in out
    assert "(none) -> layers.0.cells.0.rnn.bias_hh_l0 (16,)  zero, frozen" in out
    assert "state: h (B, 4), c (B, 4)" in out
    assert "nn.Linear(3, 1, bias=True), then linear" in out


def bad_cases(tmp_path, keras_file):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip at all")
    conv = tmp_path / "conv.keras"
    cfg = sequential(2, layer("Conv1D", "conv", filters=2, kernel_size=3, wobble=1))
    formats.write_keras(conv, cfg, {})
    existing = tmp_path / "exists.pt"
    existing.write_bytes(b"user data")
    return {
        "existing OUT": (["port", str(keras_file), str(existing)], "already exists"),
        "unknown OUT": (["port", str(keras_file), str(tmp_path / "o.onnx")], "unknown output"),
        "missing IN": (["port", str(tmp_path / "no.keras"), str(tmp_path / "o.pt")], "no.keras"),
        "junk IN": (["port", str(junk), str(tmp_path / "o.pt")], "junk.keras"),
        "Conv1D": (
            ["port", str(conv), str(tmp_path / "o.pt")],
            "Conv1D 'conv': wobble=1 is not supported",
        ),
        "inspect Conv1D": (["inspect", str(conv)], "Conv1D 'conv'"),
        "check torch only": (
            ["port", str(existing), str(tmp_path / "o.safetensors"), "--check"],
            "IN or OUT must be a Keras file",
        ),
    }


def test_bad_input_exit_2_one_line_nothing_written(keras_file, tmp_path, capsys):
    for what, (argv, words) in bad_cases(tmp_path, keras_file).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        assert main(argv) == 2, what
        line = one_error_line(capsys.readouterr().err)
        assert words in line, (what, line)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, what
    assert (tmp_path / "exists.pt").read_bytes() == b"user data"


def test_check_without_keras_is_refused_before_writing(keras_file, tmp_path, capsys, monkeypatch):
    real = check.importlib.util.find_spec
    monkeypatch.setattr(
        check.importlib.util, "find_spec", lambda n, *a: None if n == "keras" else real(n, *a)
    )
    assert main(["port", str(keras_file), str(tmp_path / "o.pt"), "--check"]) == 2
    assert "'keras' is not installed (install the 'keras' extra)" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()


def test_cli_process_unsupported_model_exit_2(tmp_path):
    cfg = sequential(2, layer("LSTM", "lstm", units=2, recurrent_activation="mine"))
    formats.write_keras(tmp_path / "hs.keras", cfg, {})
    r = run_module("port", str(tmp_path / "hs.keras"), "o.pt", cwd=tmp_path)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "LSTM 'lstm': recurrent_activation='mine' is not supported" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hs.keras"]


# --- --check against Keras itself ----------------------------------------------------------


@pytest.mark.keras
def test_check_against_keras_exit_0_per_layer_table(keras_models, tmp_path):
    src, _ = keras_models.cases["stack_seq"].source("k2_h5")  # Keras 2 file, tf_keras runs it
    r = run_module("port", str(src), "o.keras", "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = dict(line.rsplit(maxsplit=1) for line in r.stdout.splitlines()[1:5])
    assert [k.split()[0] for k in rows] == ["LSTM", "GRU", "Dense", "two"], r.stdout
    assert all(float(v) <= 1e-5 for v in rows.values()), r.stdout
    assert "within the tolerance" in r.stdout
    assert (tmp_path / "o.keras").exists()


@pytest.mark.keras
def test_check_exit_1_above_tolerance_and_nothing_written(
    keras_models, tmp_path, monkeypatch, capsys
):
    """Keras really runs; its outputs are then moved by 1e-3 (a stand-in for a port that
    computes something else): exit 1, the differences printed, no OUT."""
    src, _ = keras_models.cases["gru"].source("keras")
    real = check.run_keras

    def shifted(*a):
        return [(name, [o + 1e-3 for o in outs]) for name, outs in real(*a)]

    monkeypatch.setattr(check, "run_keras", shifted)
    assert main(["port", str(src), str(tmp_path / "o.pt"), "--check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("GRU ") and "1.000e-03" in line for line in lines), lines
    assert any("ABOVE the tolerance" in line for line in lines)
    assert not (tmp_path / "o.pt").exists()
