"""``inspect``: the layer table of a model file (Keras layer -> torch module, shapes,
transposes, gates, state)."""

from __future__ import annotations

import argparse

from .report import report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="IN", help="model file to describe")
    p.add_argument(
        "--arch", metavar="FILE", default=None, help="architecture for a bare .weights.h5"
    )


def run(args: argparse.Namespace) -> int:
    from ..port.inspect import describe_model
    from ..port.model import load_keras_model

    model = load_keras_model(args.src, args.arch)
    lines = describe_model(model, str(args.src))
    report("\n".join(lines))
    return 0
