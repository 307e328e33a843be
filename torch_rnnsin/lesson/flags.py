"""The training settings as command-line flags, built from ``TrainConfig`` so each
default is written once (used by the train and compare commands and ``keras_ref``).
Imports only argparse and the config, so that ``--help`` answers before anything heavy.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable

from ..common.args import number
from .config import TrainConfig


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


def config_from(args: argparse.Namespace, **overrides) -> TrainConfig:
    """The flags given, the defaults of ``TrainConfig`` for the others."""
    values = {name: getattr(args, name) for name in given(args)}
    return TrainConfig(**(values | overrides))
