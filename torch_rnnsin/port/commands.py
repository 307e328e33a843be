"""``port`` and ``inspect`` sub-commands: arguments here, heavy imports inside ``run_*``.

Contract with ``cli.py``: ``run_*`` returns the exit code (0, or 1 when ``--check``
finds a difference above 1e-5); bad input raises ``ValueError`` / ``OSError`` with
one line naming the bad value, which the CLI prints with exit 2.
"""

from __future__ import annotations

import argparse


def add_port_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "src",
        metavar="IN",
        help="model file to convert (.keras, .h5, .weights.h5, .safetensors, .pt)",
    )
    p.add_argument("dst", metavar="OUT", help="file to write; its extension chooses the format")
    p.add_argument(
        "--arch",
        metavar="FILE",
        default=None,
        help="architecture for a bare .weights.h5: a .keras or config .json",
    )
    p.add_argument(
        "--check", action="store_true", help="run Keras on IN and torch on OUT; exit 1 above 1e-5"
    )


def run_port(args: argparse.Namespace) -> int:
    raise NotImplementedError("port: being written")


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="IN", help="model file to describe")
    p.add_argument(
        "--arch", metavar="FILE", default=None, help="architecture for a bare .weights.h5"
    )


def run_inspect(args: argparse.Namespace) -> int:
    raise NotImplementedError("inspect: being written")
