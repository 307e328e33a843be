"""ONNX export that keeps the state (being written). Sub-command ``export``."""

from __future__ import annotations

import argparse


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "src", metavar="IN", help="a Keras model file, a lesson weights file or a run folder"
    )
    p.add_argument("dst", metavar="OUT", help="the .onnx file to write")
    p.add_argument(
        "--arch", metavar="FILE", default=None, help="architecture for a bare .weights.h5"
    )


def run_export(args: argparse.Namespace) -> int:
    raise NotImplementedError("export: being written")
