"""Everything that can refuse a training run or a comparison, checked before anything
is created: the settings, the device, weight files, ``--out``, and the checkpoint a
``--resume`` continues. Each refusal is a ``Refused`` of one line naming the bad value
and what is allowed. (The light checks, settings and flags, are in ``config``.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..common.errors import Refused, one_line
from ..common.runfolder import check_out_contents, check_out_path
from .config import TrainConfig, validate
from .convert import load_keras_weights
from .model import SinRNN

CHECKPOINT = "last.ckpt"
RUN_WEIGHTS = "keras_weights.npz"  # a finished run's final weights, in Keras order
# Settings a resumed run may change: where it runs and how long.
RESUMABLE_CHANGES = ("accelerator", "epochs")


def check_accelerator(name: str) -> None:
    if name == "gpu" and not torch.cuda.is_available():
        raise Refused("--accelerator 'gpu': no CUDA GPU is available here; use cpu or auto")


def read_weights(
    option: str, path: str, cfg: TrainConfig, hidden_given: bool
) -> tuple[list, TrainConfig]:
    """The five arrays of a weights file, and the config with its hidden size: the file's
    when ``--hidden`` was not given, else the file must match it."""
    p = Path(path)
    try:
        if not p.exists():
            raise Refused(f"{option} {path}: no such file")
        if not p.is_file():
            kind = "a folder" if p.is_dir() else "not a file one can read whole"
            raise Refused(f"{option} {path}: not a regular file ({kind})")
    except OSError as e:  # a name too long, a loop of links, ...
        raise Refused(f"{option} {path[:60]}: {e.strerror}") from None
    try:
        weights = load_keras_weights(p)
    except (ValueError, OSError) as e:
        msg = one_line(e)
        raise Refused(msg if path in msg else f"{option} {path}: {msg}") from None
    hidden = int(weights[0].shape[1])
    if not hidden_given:
        return weights, dataclasses.replace(cfg, hidden=hidden)
    if hidden != cfg.hidden:
        raise Refused(
            f"{option} {path}: the weights have hidden size {hidden}, "
            f"but --hidden {cfg.hidden} was given"
        )
    return weights, cfg


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling code (weights_only=True)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure means: not a checkpoint we can trust
        raise Refused(f"{path}: not a loadable checkpoint ({one_line(e)})") from None


def check_checkpoint(c: object, ckpt: Path, hidden: int) -> None:
    """The parts of a checkpoint a resumed run reads, each of the type and shape written."""

    def broken(why: str) -> Refused:
        return Refused(f"{ckpt}: not a checkpoint this program wrote ({why}); cannot resume")

    if not isinstance(c, dict):
        raise broken(f"it holds a {type(c).__name__}, not a dict")
    history = c.get("history")
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and set(h) == {"epoch", "train_loss", "val_loss"} for h in history
    ):
        raise broken("'history' is not a list of epochs")
    if not isinstance(c.get("epoch"), int) or c["epoch"] + 1 != len(history):
        raise broken(f"'epoch' {c.get('epoch')!r} does not match its {len(history)} epochs")
    state = c.get("state_dict")
    want = {f"model.{k}": tuple(v.shape) for k, v in SinRNN(hidden).state_dict().items()}
    if (
        not isinstance(state, dict)
        or {k: tuple(v.shape) if isinstance(v, torch.Tensor) else None for k, v in state.items()}
        != want
    ):
        raise broken(f"'state_dict' is not the weights of a hidden-{hidden} model")
    opt = c.get("optimizer_states")
    if not (
        isinstance(opt, list)
        and len(opt) == 1
        and isinstance(opt[0], dict)
        and isinstance(opt[0].get("state"), dict)
        and isinstance(opt[0].get("param_groups"), list)
    ):
        raise broken("'optimizer_states' is not one optimizer's state")
    if not isinstance(c.get("shuffle_gen_state"), torch.Tensor):
        raise broken("no 'shuffle_gen_state'")
    if not isinstance(c.get("loops"), dict):
        raise broken("no 'loops'")


def check_resume(cfg: TrainConfig, out: Path) -> Path:
    ckpt = out / CHECKPOINT
    if not ckpt.is_file():
        raise Refused(f"--resume: no checkpoint {ckpt} to resume from")
    checkpoint = load_checkpoint(ckpt)
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    saved = hp.get("config") if isinstance(hp, dict) else None
    if not isinstance(saved, dict):
        raise Refused(f"{ckpt}: holds no torch_rnnsin run settings; cannot resume")
    now = cfg.to_dict()
    diff = [
        f"{k} {saved.get(k)!r} -> {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]
    if diff:
        raise Refused(f"--resume: settings differ from the checkpoint's: {'; '.join(diff)}")
    check_checkpoint(checkpoint, ckpt, cfg.hidden)
    done = len(checkpoint["history"])
    if cfg.epochs < done:
        raise Refused(f"--epochs {cfg.epochs}: the checkpoint already holds {done} epochs")
    return ckpt


def prepare(cfg: TrainConfig, out: Path | None, resume: bool = False) -> Path | None:
    """Every check that can fail, before anything is created. Returns the checkpoint
    to resume from (None for a new run)."""
    validate(cfg)
    check_accelerator(cfg.accelerator)
    if out is None:
        return None
    check_out_path(out)
    check_out_contents(out, resume)
    return check_resume(cfg, out) if resume else None
