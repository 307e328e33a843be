"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import lightning.pytorch as pl
import numpy as np
import pytest
from conftest import ROOT, SMALL, copy_run, interrupt, run_cli, start_train

from torch_rnnsin import cli
from torch_rnnsin.commands import train as train_command
from torch_rnnsin.common import interrupts
from torch_rnnsin.lesson import run
from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.convert import load_keras_weights
from torch_rnnsin.lesson.preflight import load_checkpoint

FLAGS = [
    "--cycles",
    "100",
    "--epochs",
    "300",
    "--batch-size",
    "100",
    "--noise",
    "0.2",
    "--seed",
    "3",
]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSIN_CKPT_EVERY_S", "0.05")  # the 300 epochs take about 0.5 s
    full, killed = tmp_path / "full", tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *FLAGS, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    ckpt = killed / "last.ckpt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    first = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
    while proc.poll() is None and time.monotonic() < deadline:  # into training: a later one
        if ckpt.stat().st_mtime_ns != first:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    epoch_at_kill = len(load_checkpoint(ckpt)["history"])
    assert 0 < epoch_at_kill < 300
    assert not (killed / "metrics.json").exists()

    r = run_cli(*FLAGS, "--out", str(killed), "--resume")
    assert r.returncode == 0, r.stderr
    assert run_cli(*FLAGS, "--out", str(full)).returncode == 0

    a, b = (
        load_keras_weights(full / "keras_weights.npz"),
        load_keras_weights(killed / "keras_weights.npz"),
    )
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)  # exactly the same weights, as the README says
    # no epoch lost or repeated, and every epoch's losses the same
    assert (full / "history.csv").read_text() == (killed / "history.csv").read_text()
    assert not [p.name for p in killed.rglob("*") if ".tmp" in p.name]  # stale temp files cleared


def test_resume_refuses_other_settings(small_run, tmp_path):
    out = copy_run(small_run[0], tmp_path / "run")
    r = run_cli(*SMALL, "--seed", "5", "--noise", "0.1", "--out", str(out), "--resume")
    assert r.returncode == 2
    assert "seed 0 -> 5" in r.stderr
    assert "noise 0.0 -> 0.1" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(*SMALL, "--epochs", "10", "--out", str(out), "--resume")
    assert r.returncode == 2
    assert "--epochs 10: the checkpoint already holds 30 epochs" in r.stderr
    # a longer run may continue a finished one
    r = run_cli(*SMALL, "--epochs", "33", "--out", str(out), "--resume")  # the last --epochs wins
    assert r.returncode == 0, r.stderr
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 33
    assert history[:31] == (small_run[0] / "history.csv").read_text().splitlines()


def test_checkpoint_loads_without_unpickling_and_foreign_files_are_refused(small_run, tmp_path):
    import torch

    ckpt = torch.load(
        small_run[0] / "last.ckpt", weights_only=True
    )  # raises if anything needs pickle
    assert ckpt["hyper_parameters"]["config"]["cycles"] == 60
    # a pickle that would run code is refused, not executed
    evil = copy_run(small_run[0], tmp_path / "evil")  # a run folder of ours, checkpoint replaced

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Boom()}, evil / "last.ckpt")
    r = run_cli("--cycles", "60", "--epochs", "2", "--out", str(evil), "--resume")
    assert r.returncode == 2
    assert "not a loadable checkpoint" in r.stderr
    assert not (tmp_path / "pwned").exists()


def test_ctrl_c_exits_130_and_the_run_resumes(tmp_path, monkeypatch):
    """Ctrl-C (SIGINT) is not a failure: exit status 130, a hint naming the folder, and
    --resume finishes the run with every epoch once."""
    monkeypatch.setenv("RNNSIN_CKPT_EVERY_S", "0.05")
    flags = [f if f != "300" else "800" for f in FLAGS]  # 1.5-5 s: SIGINT comes well before the end
    out = tmp_path / "run"
    proc = start_train(*flags, "--out", str(out))
    deadline = time.monotonic() + 120
    while not (out / "last.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    err = interrupt(proc)
    assert proc.returncode == 130, err
    assert f"--out {out} --resume" in err
    assert "Traceback" not in err
    assert not (out / "metrics.json").exists()
    r = run_cli(*flags, "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    epochs = [
        int(line.split(",")[0]) for line in (out / "history.csv").read_text().splitlines()[1:]
    ]
    assert epochs == list(range(1, 801))


class _InterruptedInAFinalizer:
    """SIGINT while Python runs a finalizer: its KeyboardInterrupt is printed as
    'Exception ignored' and lost, as when Ctrl-C lands in a generator being collected."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # bytecode, where the handler runs
            pass


class _CtrlCAtEpoch2(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            _InterruptedInAFinalizer()


def test_a_ctrl_c_swallowed_by_a_finalizer_still_ends_the_run(tmp_path, monkeypatch):
    """Was: the run trained on to its last epoch (a 100000-epoch run ignored its Ctrl-C).
    Now the next batch raises it again; SIGINT's handler is Python's own afterwards."""
    make = run.make_trainer

    def with_ctrl_c(*args):
        trainer = make(*args)
        trainer.callbacks.append(_CtrlCAtEpoch2())
        return trainer

    monkeypatch.setattr(run, "make_trainer", with_ctrl_c)
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)
    with pytest.raises(KeyboardInterrupt):
        run.train_run(TrainConfig(cycles=20, epochs=50), tmp_path / "r", progress=False)
    assert [type(u.exc_value) for u in swallowed] == [KeyboardInterrupt]  # the first one was lost
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    try:
        interrupts.check()
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C note was left behind: the process's next run would stop at once")
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_a_ctrl_c_lost_during_the_imports_still_ends_the_run(tmp_path, monkeypatch, capsys):
    """The command notes Ctrl-C from before its imports: one lost there ends the run after
    its first batch, with the usual hint and exit status (was: the whole run, exit 0)."""
    imports = train_command.frozen_imports

    @contextlib.contextmanager
    def interrupted_imports():
        with imports():
            yield
        _InterruptedInAFinalizer()

    monkeypatch.setattr(train_command, "frozen_imports", interrupted_imports)
    monkeypatch.setattr(sys, "unraisablehook", lambda u: None)
    out = tmp_path / "run"
    assert cli.main(["--cycles", "20", "--epochs", "50", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("interrupted; "), err
    assert not (out / "metrics.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
