"""Contender: NumPy with hand-derived gradients — the floor for a Python program."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.data import make_windows, wave_parts
from torch_rnnsin.lesson.numpy_ref import train_numpy


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    args = p.parse_args()
    cfg = TrainConfig(epochs=args.epochs)
    t0 = time.perf_counter()
    train, _ = wave_parts(cfg.steps_per_cycle, cfg.cycles, cfg.noise, cfg.seed, cfg.test_size)
    X, y = make_windows(train, cfg.seq_len)
    rng = np.random.default_rng(cfg.seed)
    init = [
        rng.uniform(-np.sqrt(3), np.sqrt(3), (1, 1)).astype(np.float32),
        np.ones((1, 1), np.float32),
        np.zeros(1, np.float32),
        rng.uniform(-np.sqrt(3), np.sqrt(3), (1, 1)).astype(np.float32),
        np.zeros(1, np.float32),
    ]
    _, losses = train_numpy(
        init, X, y, batch_size=cfg.batch_size, epochs=cfg.epochs, lr=cfg.lr, shuffle_seed=cfg.seed
    )
    print(json.dumps({"train_s": time.perf_counter() - t0, "loss": losses[-1]}))


if __name__ == "__main__":
    main()
