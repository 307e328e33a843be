"""PNG plots of a run: loss curves, predictions against the truth, hidden states."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ..common.atomic import atomic_path

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


def plot_run(out: Path, history, values, preds: dict, mses: dict) -> list[Path]:
    paths = [out / "loss.png", out / "predictions.png", out / "hidden.png"]
    plot_losses(history, paths[0])
    plot_predictions(
        values,
        preds["stateless"][0],
        preds["stateful"][0],
        (mses["stateless"], mses["stateful"]),
        paths[1],
    )
    plot_hidden(values, preds["stateless"][1], preds["stateful"][1], paths[2])
    return paths
