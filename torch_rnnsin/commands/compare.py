"""``compare``: Keras vs torch vs NumPy, number by number. Exit status: 0 within the
tolerance (1e-5), 1 over it (or Keras failed), 2 refused."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from ..common.errors import Refused
from ..common.runfolder import folder_arg, new_default_folder, open_run_folder
from ..lesson.config import TrainConfig, check_unused, flag, validate
from ..lesson.flags import add_config_args, config_from, given

# What Keras reads only when it trains: refused with --keras-model (nothing is trained).
TRAINING = ("epochs", "lr", "batch_size", "shuffle", "train_mode", "streams", "targets")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, exclude=("accelerator",))  # both sides run on the CPU here
    p.add_argument(
        "--out",
        type=folder_arg,
        default=None,
        metavar="DIR",
        help="folder for the comparison (default: runs/compare-<timestamp>)",
    )
    p.add_argument(
        "--keras-model",
        metavar="FILE",
        default=None,
        help="compare these Keras weights (.weights.h5, .keras, .npz) instead of training Keras",
    )
    p.add_argument(
        "--init-keras", metavar="PATH", default=None, help="initial weights for Keras training"
    )


def check_flags(args: argparse.Namespace, cfg: TrainConfig) -> None:
    """No flag given that this comparison would not read."""
    typed = given(args)
    if args.keras_model is not None:
        for name in TRAINING:
            if name in typed:
                raise Refused(
                    f"{flag(name)}: not read with --keras-model (the given model is "
                    "evaluated, not trained)"
                )
        if args.init_keras is not None:
            raise Refused("--init-keras: not read with --keras-model (nothing is trained)")
    check_unused(cfg, typed)


def require_keras() -> None:
    """Refuse up front when Keras is not installed (the comparison runs it)."""
    if importlib.util.find_spec("keras") is None:
        raise Refused("compare needs Keras: install the 'keras' extra (pip install '.[keras]')")


def run(args: argparse.Namespace) -> int:
    cfg = config_from(args, accelerator="cpu")
    check_flags(args, cfg)
    validate(cfg)
    from ..lesson import compare
    from ..lesson.preflight import prepare, read_weights

    for option, path in (("--keras-model", args.keras_model), ("--init-keras", args.init_keras)):
        if path is not None:  # at most one of the two (check_flags)
            _, cfg = read_weights(option, path, cfg, "hidden" in given(args))
    prepare(cfg, args.out)
    require_keras()
    out = args.out if args.out is not None else new_default_folder(Path("runs"), "compare-")
    with open_run_folder(out, kind="compare"):
        code = compare.run_keras(compare.keras_command(cfg, out, args.keras_model, args.init_keras))
        if code != 0:
            sys.stderr.write(
                f"error: the Keras reference (python -m keras_ref) failed with exit status {code}\n"
            )
            return 1
        return compare.evaluate(out, cfg)
