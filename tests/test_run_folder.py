"""The run folder: unique names even for simultaneous runs, one writer at a time,
temporaries swept only when they are a run's own, a user's files never touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import SMALL, copy_run, interrupt, run_cli, start_train

from torch_rnnsin import cli
from torch_rnnsin.common import runfolder
from torch_rnnsin.common.atomic import PRIVATE, atomic_path, remove_stale_temps

TINY = ["--cycles", "20", "--epochs", "0"]


def call(argv: list[str]) -> int:
    try:
        return cli.main(argv, prog="train.py")
    except SystemExit as e:
        return e.code


def test_default_folders_in_the_same_second_differ(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runfolder, "timestamp", lambda: "20260101-000000")
    assert call([*TINY, "--seed", "1"]) == 0
    assert call([*TINY, "--seed", "2"]) == 0
    a, b = tmp_path / "runs" / "20260101-000000", tmp_path / "runs" / "20260101-000000-2"
    for folder, seed in ((a, 1), (b, 2)):
        assert json.loads((folder / "metrics.json").read_text())["config"]["seed"] == seed
    assert "run folder          runs/20260101-000000-2" in capsys.readouterr().out


def test_simultaneous_default_runs_get_a_folder_each(tmp_path):
    """Two processes started together, no --out: two folders, each wholly its own run.
    (Forked by tests/cli_server.py, they start within milliseconds: the same second.)"""
    args = [[*TINY[:2], "--epochs", "1", "--seed", str(seed)] for seed in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda a: run_cli(*a, cwd=tmp_path, timeout=120), args))
    for r in results:
        assert r.returncode == 0, r.stderr
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    seeds = set()
    for f in folders:
        seed = json.loads((f / "metrics.json").read_text())["config"]["seed"]
        ckpt = torch.load(f / "last.ckpt", weights_only=True)
        assert ckpt["hyper_parameters"]["config"]["seed"] == seed  # not mixed with the other
        seeds.add(seed)
    assert seeds == {1, 2}


def test_a_locked_folder_is_refused_naming_the_writer(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    with runfolder.open_run_folder(out):
        assert call([*TINY, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()} is writing this run folder" in err
        assert len(err.strip().splitlines()) == 1
        # and from another process
        r = run_cli(*TINY, "--out", str(out))
        assert r.returncode == 2
        assert f"pid {os.getpid()}" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == [PRIVATE]  # nothing written by either
    assert call([*TINY, "--out", str(out)]) == 0  # unlocked, never written: usable


def test_a_folder_being_written_names_its_writer_not_resume(tmp_path, monkeypatch, capsys):
    """A running run has written its checkpoint: a second one is told who writes the folder,
    not to add --resume (which would be refused too, while the first one runs)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    with runfolder.open_run_folder(out):
        (out / "last.ckpt").write_bytes(b"x")
        for extra in ([], ["--resume"]):
            assert call([*TINY, "--out", str(out), *extra]) == 2
            err = capsys.readouterr().err
            assert f"pid {os.getpid()} is writing this run folder" in err, err
            assert "--resume to continue" not in err
    assert call([*TINY, "--out", str(out)]) == 2  # finished (unlocked): now it is a run to resume
    assert "add --resume to continue it" in capsys.readouterr().err


def test_two_runs_with_the_same_out(tmp_path):
    """The second of two processes on one --out exits 2 naming the first, which finishes."""
    out = tmp_path / "run"
    first = start_train("--cycles", "60", "--epochs", "100000", "--out", str(out))
    try:
        lock = out / PRIVATE / runfolder.LOCK
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            lock.exists() and lock.read_text().strip() == str(first.pid)
        ):
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended early"
        r = run_cli("--cycles", "60", "--epochs", "5", "--out", str(out))
        assert r.returncode == 2, r.stderr
        assert f"pid {first.pid}" in r.stderr, r.stderr
        assert first.poll() is None  # the first one goes on
    finally:
        err = interrupt(first)
    assert first.returncode == 130, err


def test_ctrl_c_while_lightning_is_imported_still_says_how_to_go_on(tmp_path):
    """SIGINT as soon as the folder is locked lands in the ~2 s of imports before training:
    exit 130 with the same hint as during training (was: a bare 'interrupted (Ctrl-C)')."""
    out = tmp_path / "run"
    p = start_train("--epochs", "100000", "--out", str(out))
    try:
        lock = out / PRIVATE / runfolder.LOCK
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.01)
    finally:
        err = interrupt(p)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted; before its first checkpoint; start it again with the same --out {out}"
    ), err
    assert call([*TINY, "--out", str(out)]) == 0  # as the hint says


def test_only_the_runs_own_temporaries_are_swept(small_run, tmp_path, monkeypatch):
    out = copy_run(small_run[0], tmp_path / "run")
    private = out / PRIVATE
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead = int(dead.stdout)  # a pid whose process has ended
    (private / f"{dead}.tmp.metrics.json").write_text("half written")
    (private / f"{os.getpid()}.tmp.x.npz").write_text("a live process writing")
    (private / "4242.tmp.dir").mkdir()  # not a file: left alone
    user = {".notes.tmp": "mine", ".env.tmpl": "mine too", "4242.tmp.x": "also mine"}
    for name, text in user.items():
        (out / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    assert call([*SMALL, "--epochs", "31", "--out", str(out), "--resume"]) == 0
    assert not (private / f"{dead}.tmp.metrics.json").exists()
    assert (private / f"{os.getpid()}.tmp.x.npz").exists()
    assert (private / "4242.tmp.dir").is_dir()
    for name, text in user.items():
        assert (out / name).read_text() == text


def test_remove_stale_temps_outside_a_run_folder_removes_nothing(tmp_path):
    for name in (".a.tmp1", ".torch_rnnsin-1.tmp.x", "1.tmp.y"):
        (tmp_path / name).write_text("keep")
    assert remove_stale_temps(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 3


def test_atomic_path_outside_a_run_folder(tmp_path):
    target = tmp_path / "w.weights.h5"
    target.write_text("old")
    temps = []

    def write_half_then_die():
        with atomic_path(target) as tmp:
            temps.append(tmp)
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_half_then_die()
    (tmp,) = temps
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".torch_rnnsin-")
    assert tmp.name.endswith(".weights.h5")  # the extension that chooses the format
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.weights.h5"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert len(list(tmp_path.iterdir())) == 1


def test_a_run_killed_before_its_first_checkpoint_can_start_again(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with runfolder.open_run_folder(out):
        pass  # created, marked, nothing written: what a kill in the first epoch leaves
    monkeypatch.chdir(tmp_path)
    assert call([*TINY, "--out", str(out)]) == 0
    assert (out / "metrics.json").exists()
    assert call([*TINY, "--out", str(out)]) == 2  # now it holds a run


KILLED_WITH_A_CHILD = """
import os, sys, time
from pathlib import Path
from torch_rnnsin.common.runfolder import open_run_folder
with open_run_folder(Path(sys.argv[1])):
    if os.fork() == 0:  # a plot process: still drawing when its run is killed
        print("ready", flush=True)  # after the fork's handlers ran, in this child
        time.sleep(60)
        os._exit(0)
    time.sleep(60)
"""


def test_the_lock_ends_with_a_killed_run_not_with_its_children(tmp_path):
    """kill -9 then --resume at once: train.py's plot processes may still be drawing."""
    out = tmp_path / "run"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WITH_A_CHILD, str(out)], stdout=subprocess.PIPE, text=True
    ) as run:
        assert run.stdout.readline() == "ready\n"
        kids = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
        assert len(kids) == 1
        run.kill()
    try:
        os.kill(int(kids[0]), 0)  # the child lives on, its copy of the lock descriptor closed
        with runfolder.open_run_folder(out, resume=True):
            pass
    finally:
        os.kill(int(kids[0]), signal.SIGKILL)
