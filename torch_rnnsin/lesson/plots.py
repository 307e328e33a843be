"""PNG plots of a run: loss curves, predictions against the truth, hidden states.

A training run draws them in two child processes (``PlotProcess``) forked before the
training, with matplotlib already imported: they load its fonts on the idle core while
the parent trains, then draw the plots side by side while the parent writes its
other files.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ..common.atomic import atomic_path
from ..common.errors import one_line

matplotlib.use("Agg")  # files only, no window


def save_figure(fig, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def plot_losses(history: Sequence[dict], path: str | os.PathLike) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [h["epoch"] for h in history]
    ax.semilogy(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.semilogy(epochs, [h["val_loss"] for h in history], label="validation loss (stateless)")
    ax.set(xlabel="epoch", ylabel="MSE", title="Training history")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_predictions(
    values: np.ndarray,
    stateless: np.ndarray,
    stateful: np.ndarray,
    mses: tuple[float, float],
    path: str | os.PathLike,
    show: int = 100,
) -> None:
    """The first ``show`` test points with both predictions, and the errors over the whole series."""
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(9, 6.5))
    t = np.arange(len(values))
    s = slice(0, min(show, len(values)))
    ax.plot(t[s], values[s], "k-", lw=2.5, alpha=0.35, label="truth")
    ax.plot(t[s], stateless[s], "o-", ms=3, label=f"stateless (MSE {mses[0]:.2e})")
    ax.plot(t[s], stateful[s], "s--", ms=3, label=f"stateful (MSE {mses[1]:.2e})")
    ax.set(xlabel="test time step", ylabel="value", title="Test series: truth and predictions")
    ax.legend(loc="upper right", fontsize=8)
    ax2.plot(t, np.abs(stateless - values), lw=0.8, label="stateless")
    ax2.plot(t, np.abs(stateful - values), lw=0.8, label="stateful")
    ax2.set_yscale("log")
    ax2.set(
        xlabel="test time step", ylabel="|error|", title="Absolute error over the whole test series"
    )
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def shown_units(hidden: int, at_most: int = 8) -> list[int]:
    """The hidden units a plot draws: all of them up to ``at_most``, else ``at_most``
    spread evenly from the first to the last, so that a plot costs the same at any size."""
    if hidden <= at_most:
        return list(range(hidden))
    return sorted({round(i * (hidden - 1) / (at_most - 1)) for i in range(at_most)})


def plot_hidden(
    values: np.ndarray,
    hidden_stateless: np.ndarray,
    hidden_stateful: np.ndarray,
    path: str | os.PathLike,
    show: int = 100,
    at_most: int = 8,
) -> list[int]:
    """Hidden states from which each prediction is made, both modes, for at most
    ``at_most`` units (named in the title). Returns the units drawn."""
    H = hidden_stateless.shape[1]
    units = shown_units(H, at_most)
    fig, axes = plt.subplots(len(units), 1, figsize=(9, 2.2 + 1.8 * len(units)), squeeze=False)
    t = np.arange(min(show, len(values)))
    for j, ax in zip(units, axes[:, 0], strict=True):
        ax.plot(t, values[t], "k-", lw=2, alpha=0.25, label="series")
        ax.plot(t, hidden_stateless[t, j], "o-", ms=3, label="stateless h")
        ax.plot(t, hidden_stateful[t, j], "s--", ms=3, label="stateful h")
        ax.set(ylabel=f"h[{j}]")
        ax.legend(loc="upper right", fontsize=8)
    which = "" if len(units) == H else f": units {', '.join(map(str, units))} of {H}"
    axes[0, 0].set_title(f"Hidden state behind each prediction (first test steps){which}")
    axes[-1, 0].set_xlabel("test time step")
    fig.tight_layout()
    save_figure(fig, path)
    return units


PLOTS = ("loss", "predictions", "hidden")  # each drawn to <name>.png


def plot_run(
    out: Path, history, values, preds: dict, mses: dict, which: Sequence[str] = PLOTS
) -> list[Path]:
    paths = {name: out / f"{name}.png" for name in which}
    if "loss" in paths:
        plot_losses(history, paths["loss"])
    if "predictions" in paths:
        plot_predictions(
            values,
            preds["stateless"][0],
            preds["stateful"][0],
            (mses["stateless"], mses["stateful"]),
            paths["predictions"],
        )
    if "hidden" in paths:
        plot_hidden(values, preds["stateless"][1], preds["stateful"][1], paths["hidden"])
    return list(paths.values())


def warm_up() -> None:
    """Pay matplotlib's first-figure costs (font loading, text layout) on a throwaway
    figure, so that the run's plots are drawn at the warm cost."""
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.semilogy([1, 2], [1, 10], "o-", label="warm")
    ax.set(xlabel="x", ylabel="y", title="t")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(io.BytesIO(), dpi=20, format="png")
    plt.close(fig)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _serve(data_fd: int, reply_fd: int, which: Sequence[str]) -> int:
    """The child's side: warm up, read one pickled ``plot_run`` call and draw ``which``
    of it. Nothing read (the parent gave up: the run failed or was interrupted): nothing
    drawn. A failure goes back pickled, with its traceback; the exit status."""
    try:
        if threading.current_thread() is threading.main_thread():  # signal's own rule
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        warm_up()
        data = _read_all(data_fd)
        if data:
            plot_run(*pickle.loads(data), which=which)
        return 0
    except BaseException as e:
        tb = traceback.format_exc()
        try:
            payload = pickle.dumps((e, tb))
            pickle.loads(payload)  # an exception that cannot be rebuilt goes as its line
        except Exception:
            payload = pickle.dumps((RuntimeError(f"{type(e).__name__}: {one_line(e)}"), tb))
        _write_all(reply_fd, payload)
        return 1


_PARENT_ENDS: set[int] = set()  # the parent's ends of the pipes of live children


class PlotProcess:
    """``plot_run`` for ``which`` plots in a forked child: fork it early (it warms up
    while the caller works), ``send`` the run's data once, ``wait`` for the PNGs. The
    child's failure is raised by ``wait`` as the exception it raised (its traceback
    attached as a note); ``close`` ends a child that was sent nothing (it exits at once).

    Forked, not spawned: the child has the parent's matplotlib and numpy without
    importing them again. It runs no torch and leaves by ``os._exit``."""

    def __init__(self, which: Sequence[str] = PLOTS) -> None:
        data_r, self._data_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        sys.stdout.flush()  # nothing buffered is written twice
        sys.stderr.flush()
        try:
            self.pid = os.fork()
        except OSError:
            for fd in (data_r, self._data_w, self._reply_r, reply_w):
                os.close(fd)
            raise
        if self.pid == 0:  # the child
            code = 1
            try:
                # The other children's pipe ends too: a child sees the end of its data
                # when the parent closes its end, not when every sibling has exited.
                for fd in (self._data_w, self._reply_r, *_PARENT_ENDS):
                    os.close(fd)
                code = _serve(data_r, reply_w, which)
            finally:
                os._exit(code)
        os.close(data_r)
        os.close(reply_w)
        _PARENT_ENDS.update((self._data_w, self._reply_r))
        self.returncode: int | None = None

    def send(self, out: Path, history, values, preds: dict, mses: dict) -> None:
        """Hand the child ``plot_run``'s arguments."""
        data = pickle.dumps((out, list(history), values, preds, mses), pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(BrokenPipeError):  # the child is gone: ``wait`` says why
            _write_all(self._data_w, data)
        self._close_data()

    def _close_data(self) -> None:
        if self._data_w >= 0:
            _PARENT_ENDS.discard(self._data_w)
            os.close(self._data_w)
            self._data_w = -1

    def _reap(self) -> bytes:
        self._close_data()
        reply = _read_all(self._reply_r)
        _PARENT_ENDS.discard(self._reply_r)
        os.close(self._reply_r)
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        return reply

    def wait(self) -> None:
        """Until the child is done; its failure raised here."""
        reply = self._reap()
        if self.returncode == 0:
            return
        try:
            error, tb = pickle.loads(reply)
        except Exception:
            raise RuntimeError(
                f"the plotting process ended with status {self.returncode}"
            ) from None
        error.add_note(f"in the plotting process:\n{tb.rstrip()}")
        raise error

    def close(self) -> None:
        """End the child if it is still there: with no data, it exits after its warm-up."""
        if self.returncode is None:
            self._reap()


class InlinePlots:
    """``PlotProcess``'s interface, drawing in this process (when no child can be forked)."""

    def __init__(self, which: Sequence[str] = PLOTS) -> None:
        self.which = tuple(which)
        self.args: tuple | None = None
        self.returncode: int | None = None

    def send(self, out: Path, history, values, preds: dict, mses: dict) -> None:
        self.args = (out, history, values, preds, mses)

    def wait(self) -> None:
        if self.args is not None:
            plot_run(*self.args, which=self.which)
        self.returncode = 0

    def close(self) -> None:
        pass


@contextlib.contextmanager
def plot_processes(
    groups: Sequence[Sequence[str]], fork: bool = True
) -> Iterator[list[PlotProcess | InlinePlots]]:
    """One ``PlotProcess`` a group of plots, closed on the way out whatever happens;
    where the system refuses a fork (no memory, too many processes), or ``fork`` is
    False, the group is drawn in this process."""
    procs: list[PlotProcess | InlinePlots] = []
    try:
        for which in groups:
            if not fork:
                procs.append(InlinePlots(which))
                continue
            try:
                procs.append(PlotProcess(which))
            except OSError:
                procs.append(InlinePlots(which))
        yield procs
    finally:
        for proc in procs:
            proc.close()
