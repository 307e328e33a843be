"""``export``: ONNX with the recurrent state as graph inputs and outputs. IN is a Keras
model file, a lesson weights file or a finished run folder (``load_model``)."""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

from ..common.atomic import check_new_file
from ..common.errors import Refused
from ..export import DEFAULT_OPSET, OPSETS
from .report import report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "src", metavar="IN", help="a Keras model file, a lesson weights file or a run folder"
    )
    p.add_argument("dst", metavar="OUT", help="the .onnx file to write (must not exist)")
    p.add_argument(
        "--arch", metavar="FILE", default=None, help="architecture for a bare .weights.h5"
    )
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        metavar="N",
        help=f"ONNX opset, {OPSETS.start}..{OPSETS.stop - 1} (default {DEFAULT_OPSET})",
    )


def run(args: argparse.Namespace) -> int:
    from ..export.onnx import check_opset, describe, export_onnx, require_onnx

    dst = Path(args.dst)
    check_new_file(dst, "export")
    check_opset(args.opset)
    require_onnx()
    model = load_model(args.src, args.arch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        export_onnx(model, dst, opset=args.opset)
    notes = [f"note: {w.message}" for w in caught]
    report("\n".join([*notes, describe(dst)]), [dst])
    return 0


def load_model(src: str | os.PathLike, arch: str | os.PathLike | None = None):
    """The torch model behind IN: a run folder or a lesson weights file (``.npz``, or a
    ``.weights.h5`` without ``arch``) gives the lesson's ``SinRNN``; any other model file
    goes through ``load_keras_model``."""
    from ..lesson.convert import keras_to_torch, load_keras_weights
    from ..lesson.preflight import RUN_WEIGHTS
    from ..port.model import load_keras_model

    src = Path(src)
    name = src.name.lower()
    if src.is_dir():
        if arch is not None:
            raise Refused(f"--arch {arch}: a run folder ({src}) holds the lesson model")
        weights = src / RUN_WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(
                f"{src}: not a finished run folder (no {RUN_WEIGHTS}, its final weights)"
            )
        return keras_to_torch(load_keras_weights(weights))
    if not src.is_file():
        raise FileNotFoundError(f"IN not found: {src}")
    if name.endswith(".npz") or (name.endswith(".weights.h5") and arch is None):
        if arch is not None:
            raise Refused(f"--arch {arch}: only a bare .weights.h5 takes an architecture")
        try:
            return keras_to_torch(load_keras_weights(src))
        except Refused as e:
            hint = "; another model's .weights.h5 needs --arch (its .keras or config .json)"
            hint = hint if name.endswith(".h5") else ""
            raise Refused(f"{e}{hint}") from None
    return load_keras_model(src, arch=arch)
