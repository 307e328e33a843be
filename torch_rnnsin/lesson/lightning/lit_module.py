"""A thin LightningModule around ``SinRNN``: steps, logging, the optimizer,
and the random state a resumed run needs. The maths is in ``training``.

One Lightning step is one epoch of the lesson (7 Keras mini-batches at the
reference settings): Lightning's per-step cost is paid once an epoch, while
checkpoints, callbacks, logging and CPU/GPU placement stay Lightning's. Each
mini-batch's gradients are the hand-derived ones of ``bptt`` (``training``'s
default): the same numbers as autograd's, and Keras's, at a fraction of the cost.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from ..model import SinRNN
from ..optim import KerasRMSprop
from ..training import mse, stateful_epoch, stateless_epoch


class NonFiniteLossError(RuntimeError):
    pass


class SinRNNModule(pl.LightningModule):
    def __init__(
        self,
        hidden_size: int = 1,
        lr: float = 0.001,
        batch_size: int = 600,
        shuffle: bool = True,
        seed: int = 0,
        train_mode: str = "stateless",
        config: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # config: the whole run's settings, checked on --resume
        torch.manual_seed(seed)  # Keras-style init drawn from the run's seed
        self.model = SinRNN(hidden_size)
        self.automatic_optimization = False  # several optimizer steps per Lightning step
        self.shuffle_gen = torch.Generator().manual_seed(seed)
        self.history: list[dict[str, float]] = []

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        return KerasRMSprop(trainable, lr=self.hparams.lr)

    def training_step(self, batch, batch_idx: int) -> None:
        X, y, X_val, y_val = batch
        # The raw optimizer: Lightning's wrappers cost ~1 ms a mini-batch and only
        # matter for mixed precision, which this exact model never uses.
        opt = self.optimizers(use_pl_optimizer=False)
        if self.hparams.train_mode == "stateless":
            order = None
            if self.hparams.shuffle:
                # CPU generator: the same order on any device, and saved in checkpoints
                order = torch.randperm(X.shape[0], generator=self.shuffle_gen).to(X.device)
            loss = stateless_epoch(self.model, opt, X, y, self.hparams.batch_size, order)
        else:
            loss = stateful_epoch(self.model, opt, X, y)
        val_loss = mse(self.model, X_val, y_val)
        if not (math.isfinite(loss) and math.isfinite(val_loss)):
            raise NonFiniteLossError(
                f"loss became {loss} (val {val_loss}) in epoch {self.current_epoch + 1}; "
                "training stopped (try a smaller --lr)"
            )
        self.history.append(
            {"epoch": self.current_epoch + 1, "train_loss": loss, "val_loss": val_loss}
        )
        # Each self.log costs ~1 ms (Lightning walks its result collection), more than an
        # epoch's arithmetic: hand Lightning the metrics at its logging cadence; the full
        # per-epoch record is self.history (saved in checkpoints and history.csv).
        epoch = self.current_epoch + 1
        if epoch % self.trainer.log_every_n_steps == 0 or epoch == self.trainer.max_epochs:
            self.log_dict({"loss": loss, "val_loss": val_loss}, prog_bar=True, on_step=True)

    # Everything a resumed run needs beyond weights, optimizer and loop counters.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["shuffle_gen_state"] = self.shuffle_gen.get_state()
        checkpoint["history"] = list(self.history)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.shuffle_gen.set_state(checkpoint["shuffle_gen_state"])
        self.history = list(checkpoint["history"])
