"""train.py end to end: the files it writes, its speed to answer, its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SMALL, copy_run, random_keras_weights, run_cli

from torch_rnnsin.cli import main
from torch_rnnsin.lesson.convert import load_keras_weights, save_keras_weights

RUN_FILES = {
    "metrics.json",
    "keras_weights.npz",
    "last.ckpt",
    "history.csv",
    "predictions.csv",
    "loss.png",
    "predictions.png",
    "hidden.png",
}


HELP_PROBE = """
import sys
from torch_rnnsin.cli import main
for argv in (["--help"], ["compare", "--help"], ["study", "--help"], ["port", "--help"],
             ["inspect", "--help"], ["export", "--help"], ["--seq-len", "0"], ["--bogus"]):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "lightning", "keras",
                "tensorflow", "onnx", "onnxruntime", "h5py", "pandas", "matplotlib"})
print("HEAVY", heavy)
"""


def test_help_and_bad_flags_import_nothing_heavy():
    """--help of every command, and bad flags, answer from argparse and the config alone."""
    import subprocess
    import sys

    from conftest import ROOT

    r = subprocess.run(
        [sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert "HEAVY []" in r.stdout, r.stdout[-500:] + r.stderr[-500:]
    assert "--seq-len" in r.stdout
    assert "--init-keras" in r.stdout
    assert "--keras-model" in r.stdout


def test_train_writes_every_file(small_run):
    out, r = small_run
    assert {p.name for p in out.iterdir()} >= RUN_FILES
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("train_loss", "val_loss", "stateless_mse", "stateful_mse", "epochs", "seconds"):
        assert np.isfinite(m[key]), key
    assert m["epochs"] == 30
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss"
    assert len(lines) == 31
    w = load_keras_weights(out / "keras_weights.npz")
    assert [a.shape for a in w] == [(1, 1), (1, 1), (1,), (1, 1), (1,)]
    assert "stateless test MSE" in r.stdout
    assert "stateful test MSE" in r.stdout
    assert r.stderr.strip() == ""  # quiet when not on a terminal
    for png in ("loss.png", "predictions.png", "hidden.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_init_keras_sets_hidden_size_and_start(tmp_path):
    w = random_keras_weights(3, seed=1)
    save_keras_weights(w, tmp_path / "init.weights.h5")
    out = tmp_path / "run"
    r = run_cli(
        *SMALL[:2],
        "--epochs",
        "0",
        "--init-keras",
        str(tmp_path / "init.weights.h5"),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    got = load_keras_weights(out / "keras_weights.npz")
    assert all(np.array_equal(a, b) for a, b in zip(got, w, strict=True))  # 0 epochs: unchanged
    m = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN
    assert m["train_loss"] is None
    assert m["epochs"] == 0


def test_bad_input_from_the_real_entry_point(tmp_path):
    """train.py itself (not only cli.main): exit status 2, one line; tests/test_errors.py
    holds every case in-process."""
    out = tmp_path / "out"
    r = run_cli("--seq-len", "0", "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == "error: --seq-len 0: must be an integer >= 1", r.stderr
    r = run_cli("--hid", "3", "--out", str(out))
    assert r.returncode == 2
    assert "unrecognized arguments: --hid" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_hidden_plot_costs_little_at_any_size(tmp_path, monkeypatch):
    """hidden.png draws at most 8 units (named in its title): at --hidden 300 the file is
    about the size of --hidden 8's."""
    import matplotlib.pyplot as plt

    from torch_rnnsin.lesson import plots

    assert plots.shown_units(3) == [0, 1, 2]
    assert plots.shown_units(300) == [0, 43, 85, 128, 171, 214, 256, 299]
    drawn = []
    real_save = plots.save_figure

    def spy(fig, path):
        drawn.append(
            (len(fig.axes), sum(len(ax.lines) for ax in fig.axes), fig.axes[0].get_title())
        )
        real_save(fig, path)

    rng = np.random.default_rng(0)
    values = rng.standard_normal(120)
    sizes = {}
    for H in (8, 300):
        h = rng.standard_normal((120, H))
        monkeypatch.setattr(plots, "save_figure", spy)
        plots.plot_hidden(values, h, -h, tmp_path / f"h{H}.png")
        sizes[H] = (tmp_path / f"h{H}.png").stat().st_size
    assert drawn[1][:2] == (8, 24)  # 8 panels of 3 lines at hidden 300
    assert "units 0, 43, 85, 128, 171, 214, 256, 299 of 300" in drawn[1][2]
    assert sizes[300] < 1.5 * sizes[8]
    plt.close("all")


def test_run_at_hidden_300_writes_a_small_hidden_png(tmp_path):
    out = tmp_path / "run"
    assert main(["--hidden", "300", "--epochs", "1", "--cycles", "20", "--out", str(out)]) == 0
    assert (out / "hidden.png").stat().st_size < 400_000


def test_gpu_where_none_exists_is_a_clean_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; scripts/gpu_check.sh covers it")
    r = run_cli("--accelerator", "gpu", "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "--accelerator 'gpu'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_existing_run_is_not_overwritten(small_run, tmp_path):
    out = copy_run(small_run[0], tmp_path / "run")
    before = (out / "metrics.json").read_bytes()
    r = run_cli(*SMALL, "--out", str(out))
    assert r.returncode == 2
    assert "--resume" in r.stderr
    assert (out / "metrics.json").read_bytes() == before


def test_non_finite_loss_exits_1_with_a_clear_message(tmp_path):
    out = tmp_path / "run"
    r = run_cli("--cycles", "60", "--epochs", "5", "--lr", "3e17", "--out", str(out))
    assert r.returncode == 1, r.stderr
    assert "loss became" in r.stderr
    assert "--lr" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()


def test_non_finite_loss_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """A loss that turns NaN in epoch 4: the checkpoint of epoch 3 stays, finite."""
    import torch_rnnsin.lesson.lightning.lit_module as lm
    from torch_rnnsin.lesson.config import TrainConfig
    from torch_rnnsin.lesson.preflight import load_checkpoint
    from torch_rnnsin.lesson.run import train_run

    real = lm.stateless_epoch
    calls = {"n": 0}

    def failing_epoch(*args, **kwargs):
        calls["n"] += 1
        return float("nan") if calls["n"] == 4 else real(*args, **kwargs)

    monkeypatch.setattr(lm, "stateless_epoch", failing_epoch)
    monkeypatch.setenv("RNNSIN_CKPT_EVERY_S", "0")  # a checkpoint every epoch
    out = tmp_path / "run"
    with pytest.raises(lm.NonFiniteLossError, match="epoch 4"):
        train_run(TrainConfig(cycles=60, epochs=10), out, progress=False)
    ckpt = load_checkpoint(out / "last.ckpt")
    assert len(ckpt["history"]) == 3
    assert all(np.isfinite(v.numpy()).all() for v in ckpt["state_dict"].values())
    assert not (out / "metrics.json").exists()
