"""A training run end to end: checks, Lightning fit (or resume), evaluation of both
prediction modes, and the run folder. I/O lives here; the maths elsewhere."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .args import add_config_args, config_from, flag, given
from .atomic import atomic_path, write_json, write_text
from .config import TrainConfig, validate
from .runfolder import (
    check_out_contents,
    check_out_path,
    folder_arg,
    new_default_folder,
    open_run_folder,
)

if TYPE_CHECKING:
    import numpy as np

CHECKPOINT = "last.ckpt"
# Settings a resumed run may change: where it runs and how long.
RESUMABLE_CHANGES = ("accelerator", "epochs")
# Settings only one training mode reads: given with the other, they are refused.
MODE_ONLY = {"stateless": ("streams", "targets"), "stateful": ("batch_size", "shuffle")}


class RunError(ValueError):
    """A bad setting or file, found before anything is written."""


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument(
        "--out",
        type=folder_arg,
        default=None,
        metavar="DIR",
        help="run folder: new, empty, or a run's own (default: runs/<timestamp>)",
    )
    p.add_argument(
        "--init-keras",
        metavar="PATH",
        default=None,
        help="initial weights in Keras order: .weights.h5, .keras or .npz",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument(
        "--keras", action="store_true", help="run 'compare' instead: Keras vs torch vs NumPy"
    )
    p.add_argument(
        "--keras-model", metavar="FILE", default=None, help="with --keras: Keras weights to compare"
    )


def check_accelerator(name: str) -> None:
    if name == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise RunError("--accelerator 'gpu': no CUDA GPU is available here; use cpu or auto")


def check_unused(cfg: TrainConfig, typed: set[str]) -> None:
    """A setting the chosen training mode does not read is refused, not ignored."""
    for name in MODE_ONLY.get(cfg.train_mode, ()):
        if name in typed:
            other = "stateful" if cfg.train_mode == "stateless" else "stateless"
            raise RunError(
                f"{flag(name)}: only read by --train-mode {other} (this run is {cfg.train_mode})"
            )


def read_weights(
    option: str, path: str, cfg: TrainConfig, hidden_given: bool
) -> tuple[list, TrainConfig]:
    """The five arrays of a weights file, and the config with its hidden size: the file's
    when ``--hidden`` was not given, else the file must match it."""
    from .convert import load_keras_weights

    p = Path(path)
    if not p.exists():
        raise RunError(f"{option} {path}: no such file")
    if not p.is_file():
        kind = "a folder" if p.is_dir() else "not a file one can read whole"
        raise RunError(f"{option} {path}: not a regular file ({kind})")
    try:
        weights = load_keras_weights(p)
    except (ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunError(msg if path in msg else f"{option} {path}: {msg}") from None
    hidden = int(weights[0].shape[1])
    if not hidden_given:
        return weights, dataclasses.replace(cfg, hidden=hidden)
    if hidden != cfg.hidden:
        raise RunError(
            f"{option} {path}: the weights have hidden size {hidden}, "
            f"but --hidden {cfg.hidden} was given"
        )
    return weights, cfg


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling code (weights_only=True)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means: not a checkpoint we can trust
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a loadable checkpoint ({first})") from None


def check_checkpoint(c: object, ckpt: Path, hidden: int) -> None:
    """The parts of a checkpoint a resumed run reads, each of the type and shape written."""
    import torch

    from .model import SinRNN

    def broken(why: str) -> RunError:
        return RunError(f"{ckpt}: not a checkpoint this program wrote ({why}); cannot resume")

    if not isinstance(c, dict):
        raise broken(f"it holds a {type(c).__name__}, not a dict")
    history = c.get("history")
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and set(h) == {"epoch", "train_loss", "val_loss"} for h in history
    ):
        raise broken("'history' is not a list of epochs")
    if not isinstance(c.get("epoch"), int) or c["epoch"] + 1 != len(history):
        raise broken(f"'epoch' {c.get('epoch')!r} does not match its {len(history)} epochs")
    state = c.get("state_dict")
    want = {f"model.{k}": tuple(v.shape) for k, v in SinRNN(hidden).state_dict().items()}
    if (
        not isinstance(state, dict)
        or {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}
        != want
    ):
        raise broken(f"'state_dict' is not the weights of a hidden-{hidden} model")
    opt = c.get("optimizer_states")
    if not (
        isinstance(opt, list)
        and len(opt) == 1
        and isinstance(opt[0], dict)
        and isinstance(opt[0].get("state"), dict)
        and isinstance(opt[0].get("param_groups"), list)
    ):
        raise broken("'optimizer_states' is not one optimizer's state")
    if not isinstance(c.get("shuffle_gen_state"), torch.Tensor):
        raise broken("no 'shuffle_gen_state'")
    if not isinstance(c.get("loops"), dict):
        raise broken("no 'loops'")


def check_resume(cfg: TrainConfig, out: Path) -> Path:
    ckpt = out / CHECKPOINT
    if not ckpt.is_file():
        raise RunError(f"--resume: no checkpoint {ckpt} to resume from")
    checkpoint = load_checkpoint(ckpt)
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    saved = hp.get("config") if isinstance(hp, dict) else None
    if not isinstance(saved, dict):
        raise RunError(f"{ckpt}: holds no torch_rnnsin run settings; cannot resume")
    now = cfg.to_dict()
    diff = [
        f"{k} {saved.get(k)!r} -> {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]
    if diff:
        raise RunError(f"--resume: settings differ from the checkpoint's: {'; '.join(diff)}")
    check_checkpoint(checkpoint, ckpt, cfg.hidden)
    done = len(checkpoint["history"])
    if cfg.epochs < done:
        raise RunError(f"--epochs {cfg.epochs}: the checkpoint already holds {done} epochs")
    return ckpt


def prepare(cfg: TrainConfig, out: Path | None, resume: bool = False) -> Path | None:
    """Every check that can fail, before anything is created. Returns the checkpoint
    to resume from (None for a new run)."""
    try:
        validate(cfg)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_accelerator(cfg.accelerator)
    if out is None:
        return None
    check_out_path(out)
    check_out_contents(out, resume)
    return check_resume(cfg, out) if resume else None


def run_train(args: argparse.Namespace) -> int:
    """The ``train`` command: 0 done, 1 the loss became NaN/inf, 2 refused, 130 interrupted."""
    typed = given(args)
    cfg = config_from(args)
    if args.keras_model is not None:
        raise RunError("--keras-model: only read by the comparison; add --keras (or run compare)")
    if args.resume and args.out is None:
        raise RunError("--resume needs --out DIR, the run to continue")
    if args.resume and args.init_keras is not None:
        raise RunError(
            "--init-keras: not read with --resume (a resumed run continues from its checkpoint)"
        )
    check_unused(cfg, typed)
    init = None
    if args.init_keras is not None:
        init, cfg = read_weights("--init-keras", args.init_keras, cfg, "hidden" in typed)
    ckpt = prepare(cfg, args.out, args.resume)
    out = args.out if args.out is not None else new_default_folder(Path("runs"))
    with open_run_folder(out, resume=ckpt is not None):  # before any heavy import
        from .lit_module import NonFiniteLossError

        try:
            metrics = _train_in(cfg, out, init, ckpt, None)
        except NonFiniteLossError as e:
            kept = out / CHECKPOINT
            kept = f"; the last good checkpoint is kept: {kept}" if kept.exists() else ""
            sys.stderr.write(f"error: {e}{kept}\n")
            return 1
        except KeyboardInterrupt:
            where = (
                "its last checkpoint is kept" if (out / CHECKPOINT).exists() else "no checkpoint"
            )
            sys.stderr.write(
                f"\ninterrupted; {where}; continue with the same flags and --out {out} --resume\n"
            )
            return 130
    print(summary_table(metrics, out))
    return 0


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
    import numpy as np
    import pandas as pd

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
        return _train_in(cfg, out, init_weights, ckpt, progress)


def _train_in(cfg, out, init_weights, ckpt, progress) -> dict:  # noqa: ANN001
    _quiet_lightning()
    import signal

    import numpy as np
    import torch

    from .convert import keras_to_torch, save_keras_weights, torch_to_keras
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
    trainer = make_trainer(cfg, out, progress)
    saver = trainer.callbacks[0]
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
    except SystemExit:
        # Lightning turns Ctrl-C into sys.exit(1) after its callbacks ran: a KeyboardInterrupt
        # again, so that the caller can tell it from a failure (and exit 130).
        if saver.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignored it
            raise KeyboardInterrupt from None
        raise
    except Exception as e:
        if ckpt is not None and not saver.started:  # the checkpoint could not be restored
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunError(f"{ckpt}: cannot resume from it ({first})") from None
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
