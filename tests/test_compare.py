"""compare's verdict without TensorFlow: the Keras process is replaced by one that writes
what keras_ref writes (from the NumPy witness), faithfully or doctored, so that both
exit statuses are really reached. tests/test_keras_parity.py runs the real Keras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import random_keras_weights

from torch_rnnsin import cli
from torch_rnnsin.commands import compare as compare_command
from torch_rnnsin.lesson import compare
from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.convert import save_keras_weights
from torch_rnnsin.lesson.data import wave_parts
from torch_rnnsin.lesson.numpy_ref import predict_stateful_numpy, predict_stateless_numpy


def fake_keras(shift: float, seen: list):
    """A stand-in for ``python -m keras_ref run``: the witness's predictions + ``shift``."""

    def run(cmd: list[str]) -> int:
        seen.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        L = int(cmd[cmd.index("--seq-len") + 1])
        H = int(cmd[cmd.index("--hidden") + 1])
        cycles = int(cmd[cmd.index("--cycles") + 1])
        w = random_keras_weights(H, seed=5)
        _, test = wave_parts(10, cycles, 0.0, 0, 0.25)
        test = test.astype(np.float32)
        sl, hsl = predict_stateless_numpy(w, test, L)
        sf, hsf = predict_stateful_numpy(w, test)
        sf = sf.copy()
        sf[len(sf) // 2] += shift  # one stateful prediction off by `shift`
        save_keras_weights(w, out / "keras.weights.h5")
        np.savez(
            out / "keras_predictions.npz",
            test=test,
            stateless=sl.astype(np.float32),
            stateless_hidden=hsl.astype(np.float32),
            stateful=sf.astype(np.float32),
            stateful_hidden=hsf.astype(np.float32),
        )
        return 0

    return run


@pytest.mark.parametrize(("shift", "code"), [(0.0, 0), (5e-5, 1)])
def test_compare_verdict_both_ways(tmp_path, monkeypatch, capsys, shift, code):
    seen: list = []
    monkeypatch.setattr(compare_command, "require_keras", lambda: None)
    monkeypatch.setattr(compare, "run_keras", fake_keras(shift, seen))
    out = tmp_path / "cmp"
    argv = ["compare", "--cycles", "30", "--hidden", "2", "--lr", "0.05", "--out", str(out)]
    assert cli.main(argv) == code
    res = json.loads((out / "compare.json").read_text())
    assert res["ok"] is (code == 0)
    stdout = capsys.readouterr().out
    if code:
        assert res["max_diff"] == pytest.approx(shift, rel=0.05)
        assert "OVER the tolerance" in stdout
    else:
        assert res["max_diff"] <= 1e-5
        assert "within the tolerance" in stdout
    # Keras was handed every setting, the learning rate included, and nothing else
    (cmd,) = seen
    assert cmd[cmd.index("--lr") + 1] == "0.05"
    assert "--accelerator" not in cmd


def test_keras_command_spells_out_every_setting():
    cfg = TrainConfig(lr=0.1, shuffle=False, seed=7, train_mode="stateful", targets="seq")
    cmd = compare.keras_command(cfg, Path("o"), None, "w.npz")
    for name, value in cfg.to_dict().items():
        flag = TrainConfig.__dataclass_fields__[name].metadata["flag"]
        if name == "accelerator":
            assert flag not in cmd
        elif name == "shuffle":
            assert flag in cmd  # --no-shuffle
        else:
            assert cmd[cmd.index(flag) + 1] == str(value), name
    assert cmd[-2:] == ["--init-keras", "w.npz"]


def test_nan_entries_that_differ_are_a_difference():
    a = np.array([np.nan, 1.0, 2.0])
    assert compare.max_diff(a, a + 1e-7) == pytest.approx(1e-7)
    assert compare.max_diff(a, np.array([0.0, 1.0, 2.0])) == float("inf")
