"""Argument parsing shared by the commands: the training settings as flags, built
from ``TrainConfig`` so each default is written once. Imports only argparse and
the config, so that ``--help`` and bad flags answer before anything heavy loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable

from .config import TrainConfig


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that refuses abbreviations and reports a bad flag in one line."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def number(kind: type) -> Callable[[str], int | float]:
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


def add_config_args(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> None:
    """One flag per ``TrainConfig`` field (except ``exclude``). A flag not given stays
    out of the namespace (``SUPPRESS``), so ``given(args)`` knows what the user typed."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in exclude:
            continue
        meta = f.metadata
        if f.type in ("bool", bool):  # --no-X switches off a default-True setting
            parser.add_argument(
                meta["flag"],
                dest=f.name,
                action="store_const",
                const=not f.default,
                default=argparse.SUPPRESS,
                help=meta["help"],
            )
            continue
        kind = {"int": int, "float": float, "str": str}[
            f.type if isinstance(f.type, str) else f.type.__name__
        ]
        parser.add_argument(
            meta["flag"],
            dest=f.name,
            type=number(kind) if kind is not str else str,
            choices=meta.get("choices"),
            default=argparse.SUPPRESS,
            metavar="{" + ",".join(meta["choices"]) + "}"
            if "choices" in meta
            else {int: "N", float: "X"}[kind],
            help=f"{meta['help']} (default: {f.default})",
        )


def given(args: argparse.Namespace) -> set[str]:
    """The ``TrainConfig`` fields whose flag was on the command line."""
    return {f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}


def flag(name: str) -> str:
    """The command-line flag of a ``TrainConfig`` field: ``seq_len`` -> ``--seq-len``."""
    return TrainConfig.__dataclass_fields__[name].metadata["flag"]


def config_from(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The flags given, the defaults of ``TrainConfig`` for the others."""
    values = {name: getattr(args, name) for name in given(args)}
    return TrainConfig(**(values | overrides))
