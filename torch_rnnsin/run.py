"""A training run end to end: checks, Lightning fit (or resume), evaluation of both
prediction modes, and the run folder. I/O lives here; the maths elsewhere."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_path, remove_stale_temps, write_json, write_text
from .config import TrainConfig, validate

CHECKPOINT = "last.ckpt"
# Settings a resumed run may change: where it runs and how long.
RESUMABLE_CHANGES = ("accelerator", "epochs")


class RunError(ValueError):
    """A bad setting or file, found before anything is written."""


def default_out() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def check_accelerator(name: str) -> None:
    if name == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise RunError("--accelerator 'gpu': no CUDA GPU is available here; use cpu or auto")


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling code (weights_only=True)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means: not a checkpoint we can trust
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a loadable checkpoint ({first})") from None


def check_resume(cfg: TrainConfig, out: Path) -> Path:
    ckpt = out / CHECKPOINT
    if not ckpt.is_file():
        raise RunError(f"--resume: no checkpoint {ckpt} to resume from")
    checkpoint = load_checkpoint(ckpt)
    saved = checkpoint.get("hyper_parameters", {}).get("config")
    if not isinstance(saved, dict):
        raise RunError(f"{ckpt}: holds no torch_rnnsin run settings")
    done = len(checkpoint.get("history", []))
    if cfg.epochs < done:
        raise RunError(f"--epochs {cfg.epochs}: the checkpoint already holds {done} epochs")
    now = cfg.to_dict()
    diff = [
        f"{k} {saved.get(k)!r} -> {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]
    if diff:
        raise RunError(f"--resume: settings differ from the checkpoint's: {'; '.join(diff)}")
    return ckpt


def check_out(out: Path) -> None:
    """--out must be a folder, or creatable as one."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {out}: cannot create a folder under {parent} (not writable)")


def prepare(
    cfg: TrainConfig, out: Path, init_keras: str | None = None, resume: bool = False
) -> tuple[list[np.ndarray] | None, Path | None]:
    """Every check that can fail, before the run folder exists."""
    try:
        validate(cfg)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_accelerator(cfg.accelerator)
    weights = None
    if init_keras is not None:
        from .convert import check_keras_weights, load_keras_weights

        try:
            weights = check_keras_weights(load_keras_weights(init_keras), hidden_size=cfg.hidden)
        except FileNotFoundError as e:
            raise RunError(f"--init-keras {init_keras!r}: {e}") from None
        except ValueError as e:
            msg = str(e)
            raise RunError(
                msg if init_keras in msg else f"--init-keras {init_keras}: {msg}"
            ) from None
    check_out(out)
    ckpt = None
    if resume:
        ckpt = check_resume(cfg, out)
    elif out.exists() and (out / CHECKPOINT).exists():
        raise RunError(
            f"--out {out}: already holds a run; add --resume to continue it, or choose another --out"
        )
    return weights, ckpt


def _quiet_lightning() -> None:
    """Before Lightning is imported: no start-up banners or deprecation noise."""
    import warnings

    warnings.filterwarnings("ignore", message=".*treespec.*deprecated.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")


def make_trainer(cfg: TrainConfig, out: Path, progress: bool):
    import lightning.pytorch as pl

    from .callbacks import AtomicCheckpoint, EpochProgress

    callbacks = [
        AtomicCheckpoint(out / CHECKPOINT, every_s=float(os.environ.get("RNNSIN_CKPT_EVERY_S", 5)))
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
        limit_val_batches=0,  # val_loss is measured inside each training step
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
    import pandas as pd

    with atomic_path(path) as tmp:
        pd.DataFrame(cols).to_csv(tmp, index=False)


def train_run(
    cfg: TrainConfig,
    out: Path,
    init_weights: list[np.ndarray] | None = None,
    ckpt: Path | None = None,
    progress: bool | None = None,
) -> dict:
    """Train (or resume), evaluate both prediction modes on the test part, write the run folder."""
    _quiet_lightning()
    import torch

    from .convert import keras_to_torch, torch_to_keras
    from .datamodule import SineDataModule
    from .lit_module import SinRNNModule
    from .metrics import prediction_mse
    from .plots import plot_run
    from .predict import predict_stateful, predict_stateless

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
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # left by a killed run
    trainer = make_trainer(cfg, out, progress)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
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
    from .convert import save_keras_weights

    save_keras_weights(torch_to_keras(model), out / "keras_weights.npz")
    write_history(out / "history.csv", module.history)
    write_predictions(out / "predictions.csv", test, preds)
    plot_run(out, module.history, test, preds, mses)
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
