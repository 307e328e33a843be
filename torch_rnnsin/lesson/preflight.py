"""Everything that can refuse a command's input, checked before anything is created:
the settings, flags the run would not read, weight files, ``--out``, and the
checkpoint a ``--resume`` continues. Each refusal is a ``ValueError`` of one line
naming the bad value and what is allowed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .args import flag
from .config import TrainConfig, validate
from .runfolder import check_out_contents, check_out_path

CHECKPOINT = "last.ckpt"
RUN_WEIGHTS = "keras_weights.npz"  # a finished run's final weights, in Keras order
# Settings a resumed run may change: where it runs and how long.
RESUMABLE_CHANGES = ("accelerator", "epochs")
# Settings only one training mode reads: given with the other, they are refused.
MODE_ONLY = {"stateless": ("streams", "targets"), "stateful": ("batch_size", "shuffle")}


class RunError(ValueError):
    """A bad setting or file, found before anything is written."""


def check_accelerator(name: str) -> None:
    if name == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise RunError("--accelerator 'gpu': no CUDA GPU is available here; use cpu or auto")


def check_unused(cfg: TrainConfig, typed: set[str]) -> None:
    """A setting the chosen training mode does not read is refused, not ignored."""
    for name in MODE_ONLY.get(cfg.train_mode, ()):
        if name in typed:
            other = "stateful" if cfg.train_mode == "stateless" else "stateless"
            raise RunError(
                f"{flag(name)}: only read by --train-mode {other} (this run is {cfg.train_mode})"
            )


def read_weights(
    option: str, path: str, cfg: TrainConfig, hidden_given: bool
) -> tuple[list, TrainConfig]:
    """The five arrays of a weights file, and the config with its hidden size: the file's
    when ``--hidden`` was not given, else the file must match it."""
    from .convert import load_keras_weights

    p = Path(path)
    try:
        if not p.exists():
            raise RunError(f"{option} {path}: no such file")
        if not p.is_file():
            kind = "a folder" if p.is_dir() else "not a file one can read whole"
            raise RunError(f"{option} {path}: not a regular file ({kind})")
    except OSError as e:  # a name too long, a loop of links, ...
        raise RunError(f"{option} {path[:60]}: {e.strerror}") from None
    try:
        weights = load_keras_weights(p)
    except (ValueError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunError(msg if path in msg else f"{option} {path}: {msg}") from None
    hidden = int(weights[0].shape[1])
    if not hidden_given:
        return weights, dataclasses.replace(cfg, hidden=hidden)
    if hidden != cfg.hidden:
        raise RunError(
            f"{option} {path}: the weights have hidden size {hidden}, "
            f"but --hidden {cfg.hidden} was given"
        )
    return weights, cfg


def load_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint, loaded without unpickling code (weights_only=True)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure means: not a checkpoint we can trust
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a loadable checkpoint ({first})") from None


def check_checkpoint(c: object, ckpt: Path, hidden: int) -> None:
    """The parts of a checkpoint a resumed run reads, each of the type and shape written."""
    import torch

    from .model import SinRNN

    def broken(why: str) -> RunError:
        return RunError(f"{ckpt}: not a checkpoint this program wrote ({why}); cannot resume")

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
        raise RunError(f"--resume: no checkpoint {ckpt} to resume from")
    checkpoint = load_checkpoint(ckpt)
    hp = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    saved = hp.get("config") if isinstance(hp, dict) else None
    if not isinstance(saved, dict):
        raise RunError(f"{ckpt}: holds no torch_rnnsin run settings; cannot resume")
    now = cfg.to_dict()
    diff = [
        f"{k} {saved.get(k)!r} -> {now[k]!r}"
        for k in now
        if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]
    ]
    if diff:
        raise RunError(f"--resume: settings differ from the checkpoint's: {'; '.join(diff)}")
    check_checkpoint(checkpoint, ckpt, cfg.hidden)
    done = len(checkpoint["history"])
    if cfg.epochs < done:
        raise RunError(f"--epochs {cfg.epochs}: the checkpoint already holds {done} epochs")
    return ckpt


def prepare(cfg: TrainConfig, out: Path | None, resume: bool = False) -> Path | None:
    """Every check that can fail, before anything is created. Returns the checkpoint
    to resume from (None for a new run)."""
    try:
        validate(cfg)
    except ValueError as e:
        raise RunError(str(e)) from None
    check_accelerator(cfg.accelerator)
    if out is None:
        return None
    check_out_path(out)
    check_out_contents(out, resume)
    return check_resume(cfg, out) if resume else None
