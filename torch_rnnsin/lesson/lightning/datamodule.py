"""The windowed sine data as a LightningDataModule.

Per-step overhead, not arithmetic, is the cost at this model size: a
``DataLoader`` collating 600 samples one by one costs more than the training.
So the whole training set is one in-memory "batch" a Lightning step, and the
module cuts it into the real mini-batches itself (see ``lit_module``).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from ..config import TrainConfig
from ..data import make_stream_chunks, make_windows, wave_parts


class _Repeat:
    """An iterable of one item (the whole data), one Lightning step per epoch."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __iter__(self):
        yield self.tensors

    def __len__(self) -> int:
        return 1


class SineDataModule(pl.LightningDataModule):
    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.train_values, self.test_values = wave_parts(
            cfg.steps_per_cycle, cfg.cycles, cfg.noise, cfg.seed, cfg.test_size
        )
        Xv, yv = make_windows(self.test_values, cfg.seq_len)
        self.X_val, self.y_val = torch.from_numpy(Xv), torch.from_numpy(yv)
        if cfg.train_mode == "stateless":
            X, y = make_windows(self.train_values, cfg.seq_len)
        else:
            X, y = make_stream_chunks(self.train_values, cfg.seq_len, cfg.streams, cfg.targets)
        self.X_train, self.y_train = torch.from_numpy(X), torch.from_numpy(y)

    def train_dataloader(self) -> _Repeat:
        # validation data rides along: val_loss is measured after each epoch's updates
        return _Repeat(self.X_train, self.y_train, self.X_val, self.y_val)
