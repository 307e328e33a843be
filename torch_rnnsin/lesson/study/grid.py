"""The study's grid and settings: one dataclass, the source of its command-line flags.

The data and optimizer settings not swept are the training run's own defaults,
read from ``TrainConfig`` (never copied). Each model trains until its
validation loss stops improving (early stopping), so the answer comes from
converged models, not from a fixed training budget. Imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from ...common.errors import Refused
from ..config import SEED_MAX, TrainConfig

TRAIN_MODES = ("stateless", "stateful-last", "stateful-seq")
PREDICT_MODES = ("stateless", "stateful")
_RUN = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # train.py's defaults


def _setting(default, flag: str, help: str):
    return dataclasses.field(default=default, metadata={"flag": flag, "help": help})


@dataclass(frozen=True)
class StudyConfig:
    seq_lens: tuple[int, ...] = _setting((1, 2, 3, 5, 10, 20), "--seq-lens", "window lengths")
    noises: tuple[float, ...] = _setting((0.0, 0.2, 0.4), "--noises", "phase-noise amplitudes")
    train_modes: tuple[str, ...] = _setting(TRAIN_MODES, "--train-modes", "training modes")
    hiddens: tuple[int, ...] = _setting((1, 4), "--hiddens", "hidden sizes")
    seeds: tuple[int, ...] = _setting((0, 1, 2), "--seeds", "seeds (data noise, init, shuffling)")
    lrs: tuple[float, ...] = _setting(
        (0.003, 0.01, 0.03),
        "--lrs",
        "learning rates swept; each training mode and hidden size keeps the one with the "
        "lowest validation loss (the lesson's cell also trains at train.py's default)",
    )
    max_epochs: int = _setting(3000, "--max-epochs", "epoch cap of early stopping")
    patience: int = _setting(100, "--patience", "epochs without improvement before a stop")
    min_improvement: float = _setting(
        0.01, "--min-improvement", "relative fall of the best validation loss that counts"
    )
    val_fraction: float = _setting(
        0.2, "--val-fraction", "tail of the training part held out for validation"
    )
    cycles: int = _setting(_RUN["cycles"], "--cycles", "number of sine periods")
    steps_per_cycle: int = _setting(_RUN["steps_per_cycle"], "--steps-per-cycle", "points a period")
    test_size: float = _setting(_RUN["test_size"], "--test-size", "fraction held out for testing")
    batch_size: int = _setting(_RUN["batch_size"], "--batch-size", "windows a batch (stateless)")
    streams: int = _setting(_RUN["streams"], "--streams", "parallel streams (stateful training)")
    workers: int = _setting(min(2, os.cpu_count() or 1), "--workers", "parallel worker processes")

    @classmethod
    def quick(cls) -> StudyConfig:
        """A reduced grid for a look in well under a minute."""
        return cls(
            seq_lens=(2, 5),
            noises=(0.0, 0.2),
            hiddens=(1, 4),
            seeds=(0, 1),
            lrs=(_RUN["lr"], 0.01),
            max_epochs=200,
            patience=20,
            cycles=100,
            batch_size=100,
            streams=10,
        )

    @property
    def lesson_lr(self) -> float:
        """The training run's (and Keras's) default learning rate."""
        return _RUN["lr"]

    def n_points(self) -> int:
        return self.steps_per_cycle * self.cycles + 1

    def parts(self) -> tuple[int, int, int]:
        """Points in the fitted, validation and test parts of the series."""
        n_train = int(self.n_points() * (1 - self.test_size))
        n_val = int(n_train * self.val_fraction)
        return n_train - n_val, n_val, self.n_points() - n_train

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def flag(name: str) -> str:
    return StudyConfig.__dataclass_fields__[name].metadata["flag"]


def validate(cfg: StudyConfig) -> None:
    """``Refused("--flag VALUE: what is allowed")`` for the first bad setting."""

    def bad(name: str, why: str) -> Refused:
        v = getattr(cfg, name)
        items = v if isinstance(v, tuple) else (v,)
        shown = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in items)
        return Refused(f"{flag(name)} {shown}: {why}")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name in ("seq_lens", "hiddens"):
        v = getattr(cfg, name)
        if not v or not all(is_int(x) and x >= 1 for x in v):
            raise bad(name, "must be integers >= 1")
    if not cfg.seeds or not all(is_int(s) and 0 <= s <= SEED_MAX for s in cfg.seeds):
        raise bad("seeds", "must be integers in [0, 2**32)")
    if not cfg.noises or not all(math.isfinite(n) and n >= 0 for n in cfg.noises):
        raise bad("noises", "must be finite numbers >= 0")
    if not cfg.lrs or not all(math.isfinite(x) and 0 < x <= 1 for x in cfg.lrs):
        raise bad("lrs", "must be numbers in (0, 1]")
    if not cfg.train_modes or not set(cfg.train_modes) <= set(TRAIN_MODES):
        raise bad("train_modes", f"must be among {', '.join(TRAIN_MODES)}")
    for name in ("max_epochs", "patience", "cycles", "steps_per_cycle", "batch_size", "streams"):
        v = getattr(cfg, name)
        if not is_int(v) or v < 1:
            raise bad(name, "must be an integer >= 1")
    if not is_int(cfg.workers) or not 1 <= cfg.workers <= 64:
        raise bad("workers", "must be an integer in [1, 64]")
    if cfg.n_points() > 10_000_000:
        raise bad("cycles", f"makes {cfg.n_points()} points; at most 10000000")
    if not (math.isfinite(cfg.min_improvement) and 0 <= cfg.min_improvement < 1):
        raise bad("min_improvement", "must be a number in [0, 1)")
    for name in ("val_fraction", "test_size"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and 0 < v < 1):
            raise bad(name, "must be a number strictly between 0 and 1")
    n_fit, n_val, n_test = cfg.parts()
    L = max(cfg.seq_lens)
    if min(n_fit, n_val, n_test) < L + 1:
        raise bad(
            "seq_lens",
            f"the longest window needs {L + 1} points in each part; the fitted, validation "
            f"and test parts have {n_fit}, {n_val} and {n_test}",
        )
    S = n_fit // cfg.streams
    if any(m != "stateless" for m in cfg.train_modes) and (S < L + 1 or n_val < S):
        raise bad(
            "streams",
            f"cuts {n_fit} fitted points into streams of {S}; stateful training needs at "
            f"least seq_len + 1 = {L + 1} a stream and a validation part ({n_val}) of one stream",
        )
