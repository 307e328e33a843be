"""``port --check`` (torch_rnnsin/port/check.py, keras_ref/port_check.py): inputs the model
accepts, every output judged relative to its size, the Keras side started once per session
(tests/kcache.py) and loading without throwaway initialisers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_module
from kcache import keras_case

from torch_rnnsin.common.errors import TOLERANCE, Refused
from torch_rnnsin.port import check
from torch_rnnsin.port.check import Spec, figures, make_inputs

ROOT = Path(__file__).resolve().parents[1]

# --- inputs --------------------------------------------------------------------------------


def test_inputs_follow_the_specs():
    specs = [
        Spec("x", (1, 1, 1), "float32"),
        Spec("ids", (None, None), "int64", high=5),
        Spec("mask", (None, None), "bool"),
        Spec("feat", (None, 4, 2), "float32"),
    ]
    x, ids, mask, feat = make_inputs(specs)
    assert x.shape == (1, 1, 1)
    assert x.dtype == np.float32
    assert ids.shape == (3, 7)
    assert ids.dtype == np.int64
    assert feat.shape == (3, 4, 2)
    assert mask.dtype == np.bool_


def test_integer_ids_within_the_vocabulary_with_zeros():
    (ids,) = make_inputs([Spec("ids", (None, None), "int32", high=4)], batch=50, length=40)
    assert ids.min() == 0
    assert ids.max() == 3
    zeros = float((ids == 0).mean())  # 20 % set to 0, plus 0's own share of the rest
    assert 0.3 < zeros < 0.5, zeros


def test_boolean_masks_have_a_true_per_row():
    (mask,) = make_inputs([Spec("m", (None, None), "bool")], batch=400, length=2)
    assert mask.any(axis=1).all()
    assert not mask.all()


# --- figures --------------------------------------------------------------------------------


def test_difference_judged_relative_to_size():
    keras = np.array([3e4, 1.0, -0.5])
    ours = keras + np.array([3e-3, 0.0, 2e-8])
    d, r = figures(keras, ours)
    assert d == pytest.approx(3e-3, rel=0.02)  # absolute: far above 1e-5
    assert r == pytest.approx(1e-7, rel=0.05)  # relative: 3e-3 / 3e4, float32 rounding
    assert figures(np.zeros(2), np.array([0.0, 2e-5]))[1] == pytest.approx(2e-5)  # max(1, |b|)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_on_one_side_fails(bad):
    assert figures(np.array([1.0, 2.0]), np.array([1.0, bad])) == (np.inf, np.inf)


def test_non_finite_on_both_sides_agrees():
    assert figures(np.array([np.nan, np.inf]), np.array([np.nan, np.inf])) == (0.0, 0.0)


# --- compare, with a fake model and a fake Keras --------------------------------------------


class Fake(torch.nn.Module):
    """The ported model's interface: two inputs (ids, mask), two outputs."""

    streamable = True

    def __init__(self, shift: float = 0.0) -> None:
        super().__init__()
        self.inputs = [Spec("ids", (2, None), "int32", 9), Spec("m", (2, None), "bool")]
        self.shift = shift

    def _run(self, ids, m, state=None):
        # (B, T) ids -> a running sum over the masked steps, carried in the state
        start = torch.zeros(ids.shape[0]) if state is None else state
        seq = start[:, None] + torch.cumsum(ids.float() * m, dim=1)  # (B, T)
        return seq[..., None] + self.shift, seq[:, -1]  # (B, T, 1), (B,)

    def forward(self, ids, m, state=None, return_state=False):
        seq, last = self._run(ids, m, state)
        y = (seq, last[:, None])
        return (y, last) if return_state else y

    def layer_outputs(self, ids, m):
        seq, last = self._run(ids, m)
        return [("Cumsum 'sum'", seq), ("Last 'last'", [last[:, None]])]  # (B, T, 1), (B, 1)


def fake_keras(path, arch, xs):
    """What keras_ref.port_check gives for the fake model (the shift left out)."""
    ids, m = xs
    assert ids.shape == (2, 7)  # the fixed batch size of the specs
    seq = np.cumsum(ids * m, axis=1, dtype=np.float64).astype(np.float32)[..., None]
    last = seq[:, -1]
    return [
        ("Cumsum 'sum'", [seq]),
        ("Last 'last'", [last]),
        ("model output 0", [seq]),
        ("model output 1", [last]),
    ]


def test_compare_every_output_and_the_chunks(monkeypatch):
    monkeypatch.setattr(check, "run_keras", fake_keras)
    lines: list[str] = []
    worst = check.compare(Fake(), Path("m.keras"), None, out=lines.append)
    assert worst <= TOLERANCE
    names = [line.split("  ")[0] for line in lines[1:-1]]
    assert names == [
        "Cumsum 'sum'",
        "Last 'last'",
        "two chunks (3 + 4 steps), state carried",
        "model output 0",
        "model output 1",
    ]
    assert "within the tolerance" in lines[-1]


def test_compare_fails_above_tolerance(monkeypatch):
    monkeypatch.setattr(check, "run_keras", fake_keras)
    lines: list[str] = []
    worst = check.compare(Fake(shift=1e-3), Path("m.keras"), None, out=lines.append)
    assert worst == pytest.approx(1e-3, rel=1e-3)
    assert "ABOVE the tolerance" in lines[-1]


def test_compare_shapes_that_differ_fail(monkeypatch):
    def wrong(*a):
        return [(n, [o[:1] for o in outs]) for n, outs in fake_keras(*a)]

    monkeypatch.setattr(check, "run_keras", wrong)
    lines: list[str] = []
    assert check.compare(Fake(), Path("m.keras"), None, out=lines.append) == float("inf")
    assert any("shapes differ" in line for line in lines)


def test_keras_failure_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNSIN_KERAS_CMD", f"{sys.executable} -c 'import sys; sys.exit(\"no\")'")
    with pytest.raises(Refused, match="no"):
        check.run_keras(tmp_path / "m.keras", None, [np.zeros((1, 1, 1), np.float32)])


# --- against Keras --------------------------------------------------------------------------

STATEFUL = """
model = keras.Sequential([keras.Input(batch_shape=(1, 1, 1)),
                          layers.SimpleRNN(1, stateful=True, name="RNN"),
                          layers.Dense(1, name="dense")])
"""
LSTM = """
model = keras.Sequential([keras.Input((None, 3)), layers.LSTM(5, return_sequences=True),
                          layers.GRU(4), layers.Dense(2)])
"""


def port(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_module("port", *args, cwd=cwd)


@pytest.mark.keras
@pytest.mark.parametrize("api", ["k3", "k2"])
def test_lesson_stateful_prediction_model_checks(api, tmp_path):
    """batch_shape=(1, 1, 1): the check feeds batch 1 (exit 2 when it fed batch 3)."""
    case = keras_case(STATEFUL, api)
    r = port(str(case.path), str(tmp_path / "o.pt"), "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "within the tolerance" in r.stdout
    assert (tmp_path / "o.pt").exists()


CONV_POOL = """
model = keras.Sequential([keras.Input((30, 1)), layers.Conv1D(4, 3, name="c"),
                          layers.MaxPooling1D(2), layers.GRU(5), layers.Dense(1)])
"""
FIXED = """
model = keras.Sequential([keras.Input((8, 2)), layers.GRU(5, return_sequences=True),
                          layers.Dense(1)])
"""


@pytest.mark.keras
@pytest.mark.parametrize(
    ("script", "why"),
    [
        (CONV_POOL, "not streamable: Conv1D 'c': its kernel spans 3 time steps"),
        (FIXED, "the inputs fix the length to 8 steps"),
    ],
    ids=["conv-pool", "fixed-length"],
)
def test_check_says_why_it_feeds_no_chunks(script, why, tmp_path):
    """A convolution over time cannot continue from a carried state, and a fixed length
    cannot be cut in two: the check says so and passes on the rest (it failed, fed two
    chunks of 15 steps, with 'expected shape (batch, 30, 1)')."""
    case = keras_case(script, "k3")
    r = port(str(case.path), str(tmp_path / "o.pt"), "--check", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"two chunks with the state: not applicable ({why})" in r.stdout
    assert "within the tolerance" in r.stdout


@pytest.mark.keras
def test_file_names_starting_with_a_dash(tmp_path, monkeypatch):
    """The model after ``--``, the architecture as ``--arch=``: ``-m.weights.h5`` and
    ``-a.json`` are files, not options."""
    case = keras_case(LSTM, layouts=("weights",))
    weights, arch = case.source("weights")
    (tmp_path / "-m.weights.h5").write_bytes(weights.read_bytes())
    (tmp_path / "-a.json").write_bytes(arch.read_bytes())
    monkeypatch.chdir(tmp_path)
    got = check.run_keras(Path("-m.weights.h5"), Path("-a.json"), case.inputs)
    assert got[-1][0] == "model output 0"
    assert np.array_equal(got[-1][1][0], case.outputs[0])


def keras_side(model: Path, cwd: Path, *extra: str) -> dict[str, np.ndarray]:
    np.savez(cwd / "x.npz", x0=np.random.default_rng(1).standard_normal((2, 6, 3), np.float32))
    cmd = [*check.keras_command(), "--inputs=x.npz", f"--out={cwd / 'y.npz'}", *extra]
    r = subprocess.run([*cmd, "--", str(model)], capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, r.stderr
    with np.load(cwd / "y.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.keras
@pytest.mark.parametrize("api", ["k3", "k2"])
def test_loading_without_initialisers_is_bit_identical(api, tmp_path):
    """Every layer output and model output, with and without Keras's initialisers."""
    case = keras_case(LSTM, api)
    lean, full = keras_side(case.path, tmp_path), keras_side(case.path, tmp_path, "--full-init")
    assert list(lean) == list(full)
    assert len(lean) == 5  # names, 3 layers, 1 model output
    for k in lean:
        assert np.array_equal(lean[k], full[k]), k
