"""Lightning callbacks: an atomic periodic checkpoint, a Ctrl-C that cannot be lost, and a
one-line epoch progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning.pytorch as pl

from ...common import interrupts
from ...common.atomic import atomic_path


def save_checkpoint_atomic(trainer: pl.Trainer, path: Path) -> None:
    with atomic_path(path) as tmp:
        trainer.save_checkpoint(tmp)


class AtomicCheckpoint(pl.Callback):
    """Checkpoint at the end of an epoch once ``every_s`` seconds have passed, and
    at the end of training; written to a temporary name and renamed, so a kill
    never leaves a truncated checkpoint.

    It also records what the run's caller needs to know: ``started`` (a resumed
    checkpoint was restored and the first epoch began) and ``interrupted`` (Ctrl-C,
    which Lightning reports as ``sys.exit(1)``)."""

    def __init__(self, path: Path, every_s: float = 5.0) -> None:
        self.path = Path(path)
        self.every_s = every_s
        self._last = time.monotonic()
        self.started = False
        self.interrupted = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s or trainer.current_epoch + 1 >= trainer.max_epochs:
            save_checkpoint_atomic(trainer, self.path)
            self._last = now

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True


class CtrlC(pl.Callback):
    """Raises a Ctrl-C noted by ``common.interrupts`` at the end of the next batch, in case
    its KeyboardInterrupt was lost in a finalizer (see there)."""

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        interrupts.check()


class EpochProgress(pl.Callback):
    """``epoch 12/1000  loss 1.2e-02  val 1.1e-02`` on one terminal line, ~10 times a second."""

    def __init__(self) -> None:
        self._shown = 0.0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.monotonic()
        done = trainer.current_epoch + 1
        if now - self._shown < 0.1 and done < trainer.max_epochs:
            return
        self._shown = now
        h = pl_module.history[-1]
        sys.stderr.write(
            f"\repoch {done:>5}/{trainer.max_epochs}  loss {h['train_loss']:.3e}  "
            f"val {h['val_loss']:.3e}"
        )
        if done >= trainer.max_epochs:
            sys.stderr.write("\n")
        sys.stderr.flush()
