"""``python -m torch_rnnsin study``: is stateful prediction always worse?

Sweeps seq_len x noise x training mode x seed at the reference settings
(1000 epochs), trains every model, and measures both prediction modes' test MSE
for each. Training modes:

- ``stateless``: the lesson's ``fit`` on windows from the zero state (shuffled);
- ``stateful-last``: Keras ``stateful=True`` training, one target a chunk (the
  point after it; Keras's ``return_sequences=False``);
- ``stateful-seq``: the same streams, a loss at every step of the chunk
  (truncated BPTT as recurrent-network practice; ``return_sequences=True``).

Models that share seq_len and training mode train together as one batched
tensor program (``batched``); groups run in parallel worker processes.
Writes study.csv, report.md, mse_vs_seq_len.png and traces.png (``study_report``).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TRAIN_MODES = ("stateless", "stateful-last", "stateful-seq")
PREDICT_MODES = ("stateless", "stateful")


@dataclass
class StudyConfig:
    seq_lens: tuple[int, ...] = (1, 2, 3, 5, 10, 20)
    noises: tuple[float, ...] = (0.0, 0.2, 0.4)
    train_modes: tuple[str, ...] = TRAIN_MODES
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 1000
    cycles: int = 500
    steps_per_cycle: int = 10
    test_size: float = 0.25
    batch_size: int = 600
    streams: int = 50
    lr: float = 0.001
    hidden: int = 1
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    @classmethod
    def quick(cls) -> StudyConfig:
        return cls(
            seq_lens=(2, 5),
            noises=(0.0, 0.2),
            seeds=(0, 1),
            epochs=40,
            cycles=100,
            batch_size=100,
            streams=10,
        )


def study_series(cfg: StudyConfig, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from .data import wave_parts

    return wave_parts(cfg.steps_per_cycle, cfg.cycles, noise, seed, cfg.test_size)


def init_weights(seed: int, hidden: int) -> list[np.ndarray]:
    """The initial weights train.py draws for this seed (Keras defaults, torch RNG)."""
    import torch

    from .convert import torch_to_keras
    from .model import SinRNN

    torch.manual_seed(seed)
    return torch_to_keras(SinRNN(hidden))


def train_group(
    cfg: StudyConfig, seq_len: int, train_mode: str, members: list[tuple[float, int]]
) -> list[dict]:
    """Train every (noise, seed) of one shape together; evaluate each model alone."""
    import torch

    from .batched import StackedRNN, train_stateful_batched, train_stateless_batched
    from .convert import keras_to_torch
    from .data import make_stream_chunks, make_windows
    from .metrics import prediction_mse
    from .predict import predict_stateful, predict_stateless
    from .training import mse

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    parts = [study_series(cfg, noise, seed) for noise, seed in members]
    model = StackedRNN([init_weights(seed, cfg.hidden) for _, seed in members])
    if train_mode == "stateless":
        win = [make_windows(tr, seq_len) for tr, _ in parts]
        X = torch.from_numpy(np.stack([x[:, :, 0] for x, _ in win]))  # (M, N, L)
        y = torch.from_numpy(np.stack([t for _, t in win]))  # (M, N, 1)
        train_loss = train_stateless_batched(
            model,
            X,
            y,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            shuffle_seeds=[seed for _, seed in members],
        )
    else:
        targets = train_mode.split("-")[1]
        ch = [make_stream_chunks(tr, seq_len, cfg.streams, targets) for tr, _ in parts]
        X = torch.from_numpy(np.stack([x[..., 0] for x, _ in ch]))  # (M, K, B, L)
        y = torch.from_numpy(np.stack([t[..., 0] if targets == "seq" else t for _, t in ch]))
        train_loss = train_stateful_batched(
            model, X, y, epochs=cfg.epochs, lr=cfg.lr, every_step=targets == "seq"
        )
    seconds = time.perf_counter() - t0
    rows = []
    for (noise, seed), weights, (_, test), loss in zip(
        members, model.keras_weights(), parts, train_loss, strict=True
    ):
        m = keras_to_torch(weights)
        Xv, yv = (torch.from_numpy(a) for a in make_windows(test, seq_len))
        val = mse(m, Xv, yv)
        preds = {
            "stateless": predict_stateless(m, test, seq_len)[0],
            "stateful": predict_stateful(m, test)[0],
        }
        for predict_mode, pred in preds.items():
            err = prediction_mse(pred, test, predict_mode, seq_len)
            rows.append(
                {
                    "seq_len": seq_len,
                    "noise": noise,
                    "train_mode": train_mode,
                    "seed": seed,
                    "predict_mode": predict_mode,
                    "mse": err,
                    "train_loss": float(loss),
                    "val_loss": val,
                    "group_seconds": round(seconds, 2),
                    "weights": weights,
                }
            )
    return rows


def run_study(cfg: StudyConfig, progress: bool = True) -> tuple[list[dict], float]:
    groups = list(itertools.product(cfg.seq_lens, cfg.train_modes))
    # the longest groups first, so that the two workers finish together
    cost = {"stateless": 7, "stateful-last": 40, "stateful-seq": 40}
    groups.sort(key=lambda g: -(cost[g[1]] / (1 if g[1] == "stateless" else g[0]) * g[0] ** 0.5))
    members = list(itertools.product(cfg.noises, cfg.seeds))
    t0 = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
        futures = [pool.submit(train_group, cfg, L, mode, members) for L, mode in groups]
        for i, fut in enumerate(futures, 1):
            rows.extend(fut.result())
            if progress:
                print(
                    f"\r{i}/{len(groups)} groups trained, {time.perf_counter() - t0:.0f} s",
                    end="",
                    file=sys.stderr,
                )
    if progress:
        print(file=sys.stderr)
    rows.sort(
        key=lambda r: (r["train_mode"], r["seq_len"], r["noise"], r["seed"], r["predict_mode"])
    )
    return rows, time.perf_counter() - t0


def main(argv: list[str]) -> int:

    from .cli import _Parser, fail

    p = _Parser(prog="python -m torch_rnnsin study", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs") / "study")
    p.add_argument("--quick", action="store_true", help="a reduced grid in well under a minute")
    p.add_argument(
        "--epochs", type=int, default=None, help="override the epochs (default 1000; --quick 40)"
    )
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: 2)")
    args = p.parse_args(argv)
    cfg = StudyConfig.quick() if args.quick else StudyConfig()
    if args.epochs is not None:
        if args.epochs < 1:
            return fail(f"--epochs {args.epochs}: must be an integer >= 1")
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.workers is not None:
        if args.workers < 1:
            return fail(f"--workers {args.workers}: must be an integer >= 1")
        cfg = dataclasses.replace(cfg, workers=args.workers)
    rows, seconds = run_study(cfg, progress=sys.stderr.isatty())
    args.out.mkdir(parents=True, exist_ok=True)
    from .study_report import write_report

    write_report(args.out, cfg, rows, seconds)
    print(f"{len(rows) // 2} models, {seconds:.1f} s of training; report: {args.out / 'report.md'}")
    return 0
