"""A training run end to end: Lightning fit (or resume), evaluation of both prediction
modes, and the run folder's files. The checks that can refuse a run are in
``preflight``; the maths elsewhere. The ``train`` command calls ``train_in``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from ..common import interrupts
from ..common.atomic import atomic_path, write_json, write_text
from ..common.errors import Refused, one_line
from ..common.runfolder import open_run_folder
from .config import TrainConfig
from .convert import keras_to_torch, save_keras_weights, torch_to_keras
from .lightning.callbacks import AtomicCheckpoint, CtrlC, EpochProgress
from .lightning.datamodule import SineDataModule
from .lightning.lit_module import SinRNNModule
from .metrics import prediction_mse
from .plots import InlinePlots, PlotProcess, plot_processes
from .predict import predict_stateful, predict_stateless
from .preflight import CHECKPOINT, RUN_WEIGHTS

# The plots each child draws: about the same time each (the predictions plot is the biggest).
PLOT_GROUPS = (("predictions",), ("loss", "hidden"))


def quiet_lightning() -> None:
    """No start-up banners or deprecation noise from Lightning."""
    warnings.filterwarnings("ignore", message=".*treespec.*deprecated.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")


def make_trainer(cfg: TrainConfig, out: Path, progress: bool) -> pl.Trainer:
    callbacks = [
        AtomicCheckpoint(out / CHECKPOINT, every_s=float(os.environ.get("RNNSIN_CKPT_EVERY_S", 5))),
        CtrlC(),
    ]
    if progress:
        callbacks.append(EpochProgress())
    return pl.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        max_epochs=cfg.epochs,
        logger=False,
        enable_checkpointing=False,  # AtomicCheckpoint writes the checkpoint
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,  # no validation loop: val_loss is measured in each training step
        callbacks=callbacks,
        default_root_dir=str(out),
    )


def write_history(path: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["epoch", "train_loss", "val_loss"], lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    write_text(path, buf.getvalue())


def write_predictions(path: Path, values: np.ndarray, preds: dict) -> None:
    (sl, hsl), (sf, hsf) = preds["stateless"], preds["stateful"]
    cols = {"t": np.arange(len(values)), "value": values, "stateless": sl, "stateful": sf}
    for j in range(hsl.shape[1]):
        cols[f"h_stateless_{j}"] = hsl[:, j]
        cols[f"h_stateful_{j}"] = hsf[:, j]
    with atomic_path(path) as tmp:
        pd.DataFrame(cols).to_csv(tmp, index=False)


def train_run(
    cfg: TrainConfig,
    out: Path,
    init_weights: list[np.ndarray] | None = None,
    ckpt: Path | None = None,
    progress: bool | None = None,
) -> dict:
    """Train (or resume), evaluate both prediction modes on the test part, write the run
    folder, which is created (or reopened to resume) and locked for the run's length."""
    with open_run_folder(out, resume=ckpt is not None):
        return train_in(cfg, out, init_weights, ckpt, progress)


def train_in(
    cfg: TrainConfig,
    out: Path,
    init_weights: list[np.ndarray] | None = None,
    ckpt: Path | None = None,
    progress: bool | None = None,
    plot_children: bool = False,
) -> dict:
    """``train_run`` in a run folder the caller has opened (and holds the lock of).

    With ``plot_children`` (train.py's own process), the plots are drawn by two child
    processes forked here, which warm up on the idle core while this one trains; the run
    waits for them, and a failure of theirs is the run's. A library caller's process may
    hold threads of its own (TensorFlow's, a test runner's) that make a fork unsafe: there
    the plots are drawn in process, the same files."""
    with plot_processes(PLOT_GROUPS, fork=plot_children) as plotters:
        return _train_in(cfg, out, init_weights, ckpt, progress, plotters)


def _train_in(
    cfg: TrainConfig,
    out: Path,
    init_weights: list[np.ndarray] | None,
    ckpt: Path | None,
    progress: bool | None,
    plotters: list[PlotProcess | InlinePlots],
) -> dict:
    quiet_lightning()
    torch.set_num_threads(1)  # faster than 2 at this size (per-op overhead dominates)
    progress = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    dm = SineDataModule(cfg)
    module = SinRNNModule(
        cfg.hidden,
        cfg.lr,
        cfg.batch_size,
        cfg.shuffle,
        cfg.seed,
        cfg.train_mode,
        config=cfg.to_dict(),
    )
    if init_weights is not None:
        keras_to_torch(init_weights, module.model)
    trainer = make_trainer(cfg, out, progress)
    saver = trainer.callbacks[0]
    try:
        with interrupts.noted():
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after its callbacks ran: a KeyboardInterrupt
        # again, so that the caller can tell it from a failure (and exit 130).
        if saver.interrupted:
            raise KeyboardInterrupt from None
        raise
    except Exception as e:
        if ckpt is not None and not saver.started:  # the checkpoint could not be restored
            raise Refused(f"{ckpt}: cannot resume from it ({one_line(e)})") from None
        raise
    seconds = time.perf_counter() - t0

    model = module.model.cpu().eval()
    test = dm.test_values.astype(np.float32)
    preds = {
        "stateless": predict_stateless(model, test, cfg.seq_len),
        "stateful": predict_stateful(model, test),
    }
    mses = {mode: prediction_mse(preds[mode][0], test, mode, cfg.seq_len) for mode in preds}
    last = module.history[-1] if module.history else {"train_loss": None, "val_loss": None}
    metrics = {
        "train_loss": last["train_loss"],
        "val_loss": last["val_loss"],
        "stateless_mse": mses["stateless"],
        "stateful_mse": mses["stateful"],
        "epochs": len(module.history),
        "seconds": round(seconds, 3),
        "config": cfg.to_dict(),
    }
    for plotter in plotters:  # drawn while this process writes the rest
        plotter.send(out, module.history, test, preds, mses)
    save_keras_weights(torch_to_keras(model), out / RUN_WEIGHTS)
    write_history(out / "history.csv", module.history)
    write_predictions(out / "predictions.csv", test, preds)
    for plotter in plotters:
        plotter.wait()
    write_json(out / "metrics.json", metrics)
    return metrics


def _sci(v: float | None) -> str:
    return "-" if v is None else f"{v:.3e}"  # None: no epoch trained (--epochs 0)


def summary_table(metrics: dict, out: Path) -> str:
    rows = [
        ("epochs", f"{metrics['epochs']}"),
        ("train loss", _sci(metrics["train_loss"])),
        ("val loss", _sci(metrics["val_loss"])),
        ("stateless test MSE", f"{metrics['stateless_mse']:.3e}"),
        ("stateful test MSE", f"{metrics['stateful_mse']:.3e}"),
        ("seconds", f"{metrics['seconds']:.1f}"),
        ("run folder", str(out)),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)
