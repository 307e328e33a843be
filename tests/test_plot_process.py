"""The run's plots drawn by forked children: the same files as in process, failures
raised in the parent, and a child that is sent nothing leaves at once.

The forks run in a fresh Python process (``_fresh``), as train.py's are made: a test
runner's process may hold TensorFlow's threads, and train.py forks only its own process
(a library caller's ``train_in`` draws in process: ``plot_children=False``)."""

from __future__ import annotations

import time
from pathlib import Path

import cli_server
import numpy as np
import pytest

from torch_rnnsin.lesson import plots

GROUPS = (("predictions",), ("loss", "hidden"))


def _run_data():
    t = np.arange(300, dtype=np.float32)
    values = np.sin(t / 10).astype(np.float32)
    h = np.stack([np.tanh(values), -values], axis=1)  # (T, 2)
    preds = {"stateless": (values + 0.01, h), "stateful": (values - 0.02, 0.5 * h)}
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e} for e in range(1, 31)]
    return history, values, preds, {"stateless": 1e-4, "stateful": 4e-4}


def _same_files(tmp_path):
    history, values, preds, mses = _run_data()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plots.plot_run(tmp_path / "a", history, values, preds, mses)
    with plots.plot_processes(GROUPS) as procs:
        for p in procs:
            p.send(tmp_path / "b", history, values, preds, mses)
        for p in procs:
            p.wait()
    assert [p.returncode for p in procs] == [0, 0]
    for name in ("loss.png", "predictions.png", "hidden.png"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert sorted(x.name for x in (tmp_path / "b").iterdir()) == [
        "hidden.png",
        "loss.png",
        "predictions.png",
    ]


def _failure_raised(tmp_path):
    history, values, preds, mses = _run_data()
    with plots.plot_processes(GROUPS) as procs:
        for p in procs:
            p.send(tmp_path / "missing", history, values, preds, mses)
        with pytest.raises(FileNotFoundError) as info:
            procs[0].wait()
        assert procs[0].returncode == 1
        assert any("plotting process" in n for n in getattr(info.value, "__notes__", []))
    assert procs[1].returncode == 1  # reaped on the way out


def _sent_nothing(tmp_path):
    t = time.perf_counter()
    with plots.plot_processes(GROUPS) as procs:
        pass  # the run failed before its plots: nothing sent
    assert [p.returncode for p in procs] == [0, 0]
    assert time.perf_counter() - t < 30
    assert not list(tmp_path.iterdir())
    assert not plots._PARENT_ENDS


def test_no_fork_draws_in_process(tmp_path, monkeypatch):
    """Where the system refuses the fork, the same files are drawn in this process."""

    def refuse():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    history, values, preds, mses = _run_data()
    monkeypatch.setattr(plots.os, "fork", refuse)
    with plots.plot_processes(GROUPS) as procs:
        assert all(isinstance(p, plots.InlinePlots) for p in procs)
        for p in procs:
            p.send(tmp_path, history, values, preds, mses)
        for p in procs:
            p.wait()
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "hidden.png",
        "loss.png",
        "predictions.png",
    ]
    assert not plots._PARENT_ENDS


def test_a_library_caller_draws_in_process(tmp_path):
    with plots.plot_processes(GROUPS, fork=False) as procs:
        assert all(isinstance(p, plots.InlinePlots) for p in procs)


def _fresh(name: str, tmp_path: Path) -> None:
    """Run ``name(tmp_path)`` of this module in a process with no other thread: a child of
    tests/cli_server.py (the pytest worker has threads; a fork there could deadlock)."""
    script = tmp_path / "fresh.py"
    script.write_text(
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        f"import test_plot_process as t; t.{name}(Path(sys.argv[2]))"
    )
    work = tmp_path / "work"  # the function's own folder, without the script
    work.mkdir()
    here = str(Path(__file__).parent)
    r = cli_server.run([str(script), here, str(work)], tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("name", ["_same_files", "_failure_raised", "_sent_nothing"])
def test_forked_children(name, tmp_path):
    _fresh(name, tmp_path)
