"""Every setting of a training run, written once: the dataclass is the CLI's source.

Defaults are the reference run of the lesson. ``validate`` checks a config
before anything is created on disk; it imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

from ..common.errors import Refused

ACCELERATORS = ("auto", "cpu", "gpu")
TRAIN_MODES = ("stateless", "stateful")
TARGET_MODES = ("last", "seq")
# Settings only one training mode reads: given with the other, they are refused.
MODE_ONLY = {"stateless": ("streams", "targets"), "stateful": ("batch_size", "shuffle")}
SEED_MAX = 2**32 - 1  # what NumPy, torch and Keras all accept as a seed


def _setting(default, flag: str, help: str, choices: tuple[str, ...] | None = None):
    """A field with its command-line flag and help: the CLI is built from these."""
    meta = {"flag": flag, "help": help} | ({"choices": choices} if choices else {})
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    steps_per_cycle: int = _setting(10, "--steps-per-cycle", "points per sine period")
    cycles: int = _setting(500, "--cycles", "number of sine periods")
    noise: float = _setting(0.0, "--noise", "phase-noise amplitude (random_factor)")
    seq_len: int = _setting(2, "--seq-len", "window length (BPTT length)")
    test_size: float = _setting(0.25, "--test-size", "fraction of the series held out")
    hidden: int = _setting(1, "--hidden", "hidden units of the RNN")
    batch_size: int = _setting(600, "--batch-size", "windows per batch (stateless)")
    epochs: int = _setting(1000, "--epochs", "epochs")
    lr: float = _setting(0.001, "--lr", "RMSprop learning rate (Keras's)")
    seed: int = _setting(0, "--seed", "seed of noise, init and shuffling")
    accelerator: str = _setting("auto", "--accelerator", "device", ACCELERATORS)
    shuffle: bool = _setting(True, "--no-shuffle", "keep the window order (Keras shuffle=False)")
    train_mode: str = _setting(
        "stateless",
        "--train-mode",
        "stateless windows, or state carried between chunks (truncated BPTT)",
        TRAIN_MODES,
    )
    streams: int = _setting(50, "--streams", "parallel streams for --train-mode stateful")
    targets: str = _setting(
        "last",
        "--targets",
        "stateful training loss: the point after each chunk (Keras "
        "return_sequences=False) or the next point at every step",
        TARGET_MODES,
    )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def n_points(self) -> int:
        return self.steps_per_cycle * self.cycles + 1

    @property
    def n_train(self) -> int:
        return int(self.n_points * (1 - self.test_size))


def flag(name: str) -> str:
    """The command-line flag of a ``TrainConfig`` field: ``seq_len`` -> ``--seq-len``."""
    return TrainConfig.__dataclass_fields__[name].metadata["flag"]


def check_unused(cfg: TrainConfig, typed: set[str]) -> None:
    """A setting the chosen training mode does not read is refused, not ignored."""
    for name in MODE_ONLY.get(cfg.train_mode, ()):
        if name in typed:
            other = "stateful" if cfg.train_mode == "stateless" else "stateless"
            raise Refused(
                f"{flag(name)}: only read by --train-mode {other} (this run is {cfg.train_mode})"
            )


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(cfg: TrainConfig) -> None:
    """Raise ``Refused("--flag VALUE: what is allowed")`` for the first bad setting."""

    def bad(name: str, why: str) -> Refused:
        return Refused(f"{flag(name)} {getattr(cfg, name)!r}: {why}")

    for name in ("steps_per_cycle", "cycles", "seq_len", "hidden", "batch_size", "streams"):
        v = getattr(cfg, name)
        if not _is_int(v) or v < 1:
            raise bad(name, "must be an integer >= 1")
    if not _is_int(cfg.epochs) or cfg.epochs < 0:
        raise bad("epochs", "must be an integer >= 0")
    if not _is_int(cfg.seed) or not 0 <= cfg.seed <= SEED_MAX:
        raise bad("seed", f"must be an integer from 0 to {SEED_MAX} (2**32 - 1)")
    if not (math.isfinite(cfg.noise) and cfg.noise >= 0):
        raise bad("noise", "must be a finite number >= 0")
    if not (math.isfinite(cfg.test_size) and 0 < cfg.test_size < 1):
        raise bad("test_size", "must be a number strictly between 0 and 1")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise bad("lr", "must be a finite number > 0")
    if cfg.accelerator not in ACCELERATORS:
        raise bad("accelerator", f"must be one of {', '.join(ACCELERATORS)}")
    if cfg.train_mode not in TRAIN_MODES:
        raise bad("train_mode", f"must be one of {', '.join(TRAIN_MODES)}")
    if cfg.targets not in TARGET_MODES:
        raise bad("targets", f"must be one of {', '.join(TARGET_MODES)}")
    n_test = cfg.n_points - cfg.n_train
    if cfg.n_train < 2 or n_test < 2:
        raise bad(
            "test_size",
            f"splits {cfg.n_points} points into {cfg.n_train} train and {n_test} test; "
            "each part needs at least 2",
        )
    shortest = min(cfg.n_train, n_test)
    if cfg.seq_len >= shortest:
        raise bad(
            "seq_len",
            f"must be < {shortest}, the length of the shorter of the train "
            f"({cfg.n_train}) and test ({n_test}) parts",
        )
    if cfg.train_mode == "stateful":
        stream_len = cfg.n_train // cfg.streams
        if stream_len < cfg.seq_len + 1:
            raise bad(
                "streams",
                f"cuts {cfg.n_train} training points into streams of {stream_len}; "
                f"each needs at least seq_len + 1 = {cfg.seq_len + 1}",
            )
    check_memory(cfg)


def estimate_bytes(cfg: TrainConfig) -> int:
    """Peak memory of a run, roughly and from above: the series and its windows, the
    hidden states both prediction modes write, the model with its optimizer."""
    n, n_test, L, H = cfg.n_points, cfg.n_points - cfg.n_train, cfg.seq_len, cfg.hidden
    batch = cfg.batch_size if cfg.train_mode == "stateless" else cfg.streams
    series = 64 * n  # the generator's float64 columns
    windows = (16 + 8 * L) * n  # float64 -> float32 -> (N, L) windows and targets
    states = (4 * L + 64) * H * n_test  # (N, L, H) RNN output, both modes' states, the CSV
    model = 24 * (H * H + 3 * H + 1)  # weights, gradients, velocities, checkpoint copies
    activations = 16 * min(batch, cfg.n_train) * L * H
    return series + windows + states + model + activations


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(cfg: TrainConfig, available: int | None = None) -> None:
    """Refuse, before anything is allocated, a run that cannot fit in memory."""
    need = estimate_bytes(cfg)
    available = available_memory() if available is None else available
    if available is None or need <= available:
        return
    gib = 2**30
    data = cfg.n_points * (80 + 8 * cfg.seq_len)
    name = "cycles" if data >= need / 2 else "hidden"
    raise Refused(
        f"{flag(name)} {getattr(cfg, name)!r}: the run would need about {need / gib:.1f} GiB of "
        f"memory ({cfg.n_points} points, hidden {cfg.hidden}, seq_len {cfg.seq_len}); "
        f"{available / gib:.1f} GiB are available"
    )
