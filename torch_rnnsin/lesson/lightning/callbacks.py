"""Lightning callbacks: an atomic periodic checkpoint, a Ctrl-C that cannot be lost, and a
one-line epoch progress."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl

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
    """Ctrl-C ends the run even where its KeyboardInterrupt was swallowed.

    Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives. In a
    finalizer (a ``__del__``, a generator the garbage collector closes) it is printed as
    'Exception ignored' and lost: the run went on to its last epoch. While ``armed``, the
    handler also notes the signal, and the end of the next batch raises it again."""

    def __init__(self) -> None:
        self.pending = False

    def _handler(self, signum: int, frame: object) -> None:
        self.pending = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """This handler while the body runs, where Python's own is in place (not where
        SIGINT is ignored, as in a background job, or a caller handles it); afterwards the
        previous one again (Lightning leaves SIGINT ignored after an interrupt)."""
        main = threading.current_thread() is threading.main_thread()  # signal's own rule
        previous = signal.getsignal(signal.SIGINT) if main else None
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if self.pending:
            raise KeyboardInterrupt


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
