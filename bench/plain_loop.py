"""Contender: a plain PyTorch loop, no Lightning — the same model, data, batches,
optimizer and epoch function as train.py. Run as a whole process; the tests call
``train`` to check that train.py ends on the very same weights."""

from __future__ import annotations

import argparse
import json
import time

import torch

from torch_rnnsin.lesson.config import TrainConfig
from torch_rnnsin.lesson.data import make_windows, wave_parts
from torch_rnnsin.lesson.model import SinRNN
from torch_rnnsin.lesson.optim import KerasRMSprop
from torch_rnnsin.lesson.training import GRADS, mse, stateless_epoch


def train(
    cfg: TrainConfig, device: str = "cpu", grads: str = "hand"
) -> tuple[SinRNN, float, float]:
    """Stateless training as train.py does it (seeded init, seeded shuffling, val after
    each epoch). Returns the model and the last epoch's training and validation loss."""
    train_part, test = wave_parts(
        cfg.steps_per_cycle, cfg.cycles, cfg.noise, cfg.seed, cfg.test_size
    )
    dev = torch.device(device)
    X, y = (torch.from_numpy(a).to(dev) for a in make_windows(train_part, cfg.seq_len))
    Xv, yv = (torch.from_numpy(a).to(dev) for a in make_windows(test, cfg.seq_len))
    torch.manual_seed(cfg.seed)
    model = SinRNN(cfg.hidden).to(dev)
    opt = KerasRMSprop([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    loss = val = float("nan")
    for _ in range(cfg.epochs):
        order = torch.randperm(X.shape[0], generator=gen).to(dev) if cfg.shuffle else None
        loss = stateless_epoch(model, opt, X, y, cfg.batch_size, order, grads=grads)
        val = mse(model, Xv, yv)
    return model, loss, val


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--device", default="cpu")
    p.add_argument("--grads", default="hand", choices=GRADS)
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    _, loss, val = train(TrainConfig(epochs=args.epochs), args.device, args.grads)
    print(json.dumps({"train_s": time.perf_counter() - t0, "loss": loss, "val_loss": val}))


if __name__ == "__main__":
    main()
