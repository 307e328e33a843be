"""The run's plots drawn by forked children: the same files as in process, failures
raised in the parent, and a child that is sent nothing leaves at once."""

from __future__ import annotations

import time

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


def test_children_draw_the_same_files_as_in_process(tmp_path):
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


def test_a_failure_in_a_child_is_raised_by_wait(tmp_path):
    history, values, preds, mses = _run_data()
    with plots.plot_processes(GROUPS) as procs:
        for p in procs:
            p.send(tmp_path / "missing", history, values, preds, mses)
        with pytest.raises(FileNotFoundError) as info:
            procs[0].wait()
        assert procs[0].returncode == 1
        assert any("plotting process" in n for n in getattr(info.value, "__notes__", []))
    assert procs[1].returncode == 1  # reaped on the way out


def test_children_sent_nothing_leave_at_once(tmp_path):
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
