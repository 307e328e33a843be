"""Training the grid: one group per (hidden, seq_len, training mode), its models
(noise x seed x learning rate) trained together by ``trainer``, the groups spread
over worker processes. Each model is then scored alone, both prediction modes.

The training part of each series is cut in two: the fitted part and, at its
end, the validation part early stopping watches. The test part is the
training run's own (the series' last ``test_size``), never looked at in training.

Validation loss = the training objective on held-out data: windows from the
zero state for ``stateless``; for the stateful modes, the validation part cut
into streams as long as the training streams, chunked and scored the same way.
"""

from __future__ import annotations

import itertools
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from ..bptt import forward
from ..convert import torch_to_keras
from ..data import make_stream_chunks, make_windows, wave_parts
from ..metrics import prediction_mse
from ..model import SinRNN
from . import trainer
from .grid import StudyConfig

CONSTANT_LEVEL = 0.9  # validation MSE >= this x the best constant's: "constant level"


def study_series(cfg: StudyConfig, noise: float, seed: int) -> tuple[np.ndarray, ...]:
    """The fitted, validation and test parts of one (noisy) series."""
    train, test = wave_parts(cfg.steps_per_cycle, cfg.cycles, noise, seed, cfg.test_size)
    n_fit = cfg.parts()[0]
    return train[:n_fit], train[n_fit:], test


def init_weights(seed: int, hidden: int) -> list[np.ndarray]:
    """The initial weights train.py draws for this seed (Keras defaults, torch RNG)."""
    torch.manual_seed(seed)
    return torch_to_keras(SinRNN(hidden))


def _stack(arrays) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays)))


def predictions(model, values: list[np.ndarray], seq_len: int) -> dict[str, np.ndarray]:
    """Both prediction modes of every model on its own series (all of one length),
    aligned with the series as ``predict`` does: {mode: (M, n)}, NaN where none."""
    M, n = len(values), len(values[0])
    X = _stack([make_windows(v, seq_len)[0][:, :, 0] for v in values])  # (M, n-L, L)
    stateless = np.full((M, n), np.nan, np.float32)
    stateless[:, seq_len:] = forward(model.weights, X)[0][..., 0].numpy()
    x = torch.from_numpy(np.stack(values).astype(np.float32)[:, None, :-1])  # (M, 1, n-1)
    stateful = np.empty((M, n), np.float32)
    stateful[:, 0] = np.stack(values)[:, 0]
    stateful[:, 1:] = forward(model.weights, x, every_step=True)[0][:, 0].numpy()
    return {"stateless": stateless, "stateful": stateful}


def _targets_spread(y: np.ndarray, series: np.ndarray) -> float:
    """Variance of the training targets over the series' variance: near 0 when every
    target is (nearly) one value, so that a constant output fits them."""
    return float(np.var(y, dtype=np.float64) / np.var(series, dtype=np.float64))


def train_group(
    cfg: StudyConfig, hidden: int, seq_len: int, train_mode: str, members: list[tuple]
) -> list[dict]:
    """Train every (noise, seed, lr) of one shape together; score each model alone."""
    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    parts = [study_series(cfg, noise, seed) for noise, seed, _ in members]
    model = trainer.ModelBatch([init_weights(seed, hidden) for _, seed, _ in members])
    stop = trainer.Stopping(cfg.max_epochs, cfg.patience, cfg.min_improvement)
    lrs = [lr for *_, lr in members]
    if train_mode == "stateless":
        win = [make_windows(fit, seq_len) for fit, _, _ in parts]
        X, y = _stack([x[:, :, 0] for x, _ in win]), _stack([t for _, t in win])  # (M,N,L),(M,N,1)
        vw = [make_windows(val, seq_len) for _, val, _ in parts]
        Xv, yv = _stack([x[:, :, 0] for x, _ in vw]), _stack([t for _, t in vw])
        spread = [_targets_spread(t, fit) for (_, t), (fit, _, _) in zip(win, parts, strict=True)]
        gens = {s: torch.Generator().manual_seed(s) for _, s, _ in members}
        N = X.shape[1]

        seeds = torch.tensor([s for _, s, _ in members])

        def epoch(batch, lr, rows):
            perms = {s: torch.randperm(N, generator=g) for s, g in gens.items()}
            order = torch.stack([perms[int(s)] for s in seeds[rows]])  # (m, N)
            Xe, ye = X[rows[:, None], order], y[rows[:, None], order]  # shuffled, (m, N, L)
            return trainer.batch_stateless_epoch(batch, Xe, ye, cfg.batch_size, lr)

        def val_loss(batch, rows):
            return trainer.windows_loss(batch, Xv[rows], yv[rows])
    else:
        targets = train_mode.split("-")[1]
        every = targets == "seq"
        ch = [make_stream_chunks(fit, seq_len, cfg.streams, targets) for fit, _, _ in parts]
        X = _stack([x[..., 0] for x, _ in ch])  # (M, K, B, L)
        y = _stack([t[..., 0] if every else t for _, t in ch])
        val_streams = max(1, len(parts[0][1]) // (len(parts[0][0]) // cfg.streams))
        vc = [make_stream_chunks(val, seq_len, val_streams, targets) for _, val, _ in parts]
        Xv = _stack([x[..., 0] for x, _ in vc])
        yv = _stack([t[..., 0] if every else t for _, t in vc])
        spread = [_targets_spread(t, fit) for (_, t), (fit, _, _) in zip(ch, parts, strict=True)]

        def epoch(batch, lr, rows):
            return trainer.batch_stateful_epoch(batch, X[rows], y[rows], every, lr)

        def val_loss(batch, rows):
            return trainer.chunks_loss(batch, Xv[rows], yv[rows], every)

    out = trainer.fit(model, lrs, epoch, val_loss, stop)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    preds_val = predictions(model, [val for _, val, _ in parts], seq_len)
    preds_test = predictions(model, [test for _, _, test in parts], seq_len)
    rows = []
    for m, ((noise, seed, lr), weights, (_, val, test)) in enumerate(
        zip(members, model.keras_weights(), parts, strict=True)
    ):
        val_mse = {pm: prediction_mse(p[m], val, pm, seq_len) for pm, p in preds_val.items()}
        constant_mse = float(np.var(val, dtype=np.float64))  # the best constant's
        constant = min(val_mse.values()) >= CONSTANT_LEVEL * constant_mse
        for pm, p in preds_test.items():
            rows.append(
                {
                    "hidden": hidden,
                    "seq_len": seq_len,
                    "noise": noise,
                    "train_mode": train_mode,
                    "seed": seed,
                    "lr": lr,
                    "predict_mode": pm,
                    "mse": prediction_mse(p[m], test, pm, seq_len),
                    "val_mse": val_mse[pm],
                    "constant_mse": constant_mse,
                    "constant_level": bool(constant),
                    "target_spread": spread[m],
                    "train_loss": float(out.train_loss[m]),
                    "val_loss": float(out.val_loss[m]),
                    "best_epoch": int(out.best_epoch[m]),
                    "epochs_trained": int(out.epochs_trained[m]),
                    "converged": bool(out.converged[m]),
                    "group_seconds": round(seconds, 2),
                    "group_cpu_seconds": round(cpu, 2),
                    "weights": weights,
                }
            )
    return rows


def _cost(cfg: StudyConfig, hidden: int, seq_len: int, mode: str) -> float:
    """A rough relative cost of a group's epoch: optimizer steps x ops a step."""
    n_fit = cfg.parts()[0]
    if mode == "stateless":
        steps = -(-(n_fit - seq_len) // cfg.batch_size)
    else:
        steps = 1.3 * ((n_fit // cfg.streams - 1) // seq_len)  # + validation chunks
    return steps * (20 + 6 * seq_len) * (1 + 0.02 * hidden)


def members(cfg: StudyConfig, seq_len: int, train_mode: str) -> list[tuple]:
    """(noise, seed, lr) of every model of a group: the sweep, and in the lesson's cell
    (clean wave, seq_len 2, stateless) also train.py's default learning rate."""
    out = list(itertools.product(cfg.noises, cfg.seeds, sorted(set(cfg.lrs))))
    if (seq_len, train_mode) == (2, "stateless") and 0.0 in cfg.noises:
        out += [(0.0, s, cfg.lesson_lr) for s in cfg.seeds if cfg.lesson_lr not in cfg.lrs]
    return out


def run_grid(cfg: StudyConfig, progress: bool = True) -> tuple[list[dict], float]:
    """Every group of the grid; rows sorted. Returns the rows and the seconds taken."""
    groups = list(itertools.product(cfg.hiddens, cfg.seq_lens, cfg.train_modes))
    groups.sort(key=lambda g: -_cost(cfg, *g))  # the longest first: workers finish together
    t0 = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=min(cfg.workers, len(groups))) as pool:
        futures = [
            pool.submit(train_group, cfg, H, L, mode, members(cfg, L, mode))
            for H, L, mode in groups
        ]
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
    order = ("hidden", "train_mode", "seq_len", "noise", "seed", "lr", "predict_mode")
    rows.sort(key=lambda r: tuple(r[k] for k in order))
    return rows, time.perf_counter() - t0
