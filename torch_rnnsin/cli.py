"""The command line, built from ``TrainConfig`` so each default is written once.

    train.py [flags]                      train (the default command)
    python -m torch_rnnsin compare ...    Keras vs torch vs NumPy, number by number
    python -m torch_rnnsin study ...      is stateful prediction always worse?

Only argparse and the config are imported before the arguments are checked:
``--help`` and bad input answer fast; bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .config import TrainConfig

COMMANDS = ("train", "compare", "study")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def _number(kind):
    """argparse type that names the flag's bad value in its one-line error."""

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None

    parse.__name__ = kind.__name__
    return parse


def add_config_args(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if f.type in ("bool", bool):  # --no-X switches off a default-True setting
            parser.add_argument(meta["flag"], dest=f.name, action="store_false", help=meta["help"])
            continue
        kind = {"int": int, "float": float, "str": str}[
            f.type if isinstance(f.type, str) else f.type.__name__
        ]
        parser.add_argument(
            meta["flag"],
            dest=f.name,
            type=_number(kind) if kind is not str else str,
            default=f.default,
            metavar="{" + ",".join(meta["choices"]) + "}"
            if "choices" in meta
            else {int: "N", float: "X"}[kind],
            help=f"{meta['help']} (default: {f.default})",
        )


def config_from(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})


def train_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    p = _Parser(
        prog=prog,
        description="Train the 5-weight sine RNN (PyTorch + Lightning) "
        "and compare stateless with stateful prediction.",
    )
    add_config_args(p)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="run folder (default: runs/<timestamp>)",
    )
    p.add_argument(
        "--init-keras",
        metavar="PATH",
        default=None,
        help="initial weights in Keras order: .weights.h5, .keras or .npz",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.add_argument(
        "--keras", action="store_true", help="run 'compare' instead: Keras vs torch vs NumPy"
    )
    p.add_argument(
        "--keras-model", metavar="FILE", default=None, help="with --keras: Keras weights to compare"
    )
    return p


def hidden_from_weights(cfg: TrainConfig, argv: list[str], path: str | None) -> TrainConfig:
    """Without an explicit --hidden, a weights file given decides the hidden size."""
    if path is None or any(a == "--hidden" or a.startswith("--hidden=") for a in argv):
        return cfg
    from .convert import load_keras_weights

    try:
        return dataclasses.replace(cfg, hidden=int(load_keras_weights(path)[0].shape[1]))
    except (OSError, ValueError):
        return cfg  # prepare() reports the bad file with the full message


def fail(message: str, code: int = 2) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def main_train(argv: list[str], prog: str = "train.py") -> int:
    args = train_parser(prog).parse_args(argv)
    if args.keras:
        return main_compare(argv=[a for a in argv if a != "--keras"])
    from .run import CHECKPOINT, RunError, default_out, prepare, summary_table, train_run

    cfg = hidden_from_weights(config_from(args), argv, args.init_keras)
    out = args.out or default_out()
    if args.resume and args.out is None:
        return fail("--resume needs --out DIR, the run to continue")
    try:
        init, ckpt = prepare(cfg, out, args.init_keras, args.resume)
    except RunError as e:
        return fail(str(e))
    from .lit_module import NonFiniteLossError

    try:
        metrics = train_run(cfg, out, init, ckpt)
    except NonFiniteLossError as e:
        ckpt = out / CHECKPOINT
        kept = f"; the last good checkpoint is kept: {ckpt}" if ckpt.exists() else ""
        return fail(f"{e}{kept}", code=1)
    except KeyboardInterrupt:
        return fail(f"interrupted; continue with --out {out} --resume", code=130)
    print(summary_table(metrics, out))
    return 0


def main_compare(argv: list[str]) -> int:
    from .compare import main

    return main(argv)


def main_study(argv: list[str]) -> int:
    from .study import main

    return main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        cmd, rest = argv[0], argv[1:]
        return {"train": main_train, "compare": main_compare, "study": main_study}[cmd](rest)
    return main_train(argv)
