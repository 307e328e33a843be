"""``port``: convert a Keras model file to torch (or back); with ``--check``, Keras
against torch. Exit status 0, or 1 when ``--check`` finds a difference above 1e-5 (OUT
is then not written); bad input raises ``Refused`` (exit 2, see ``cli``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from ..common.atomic import atomic_path, check_new_file
from ..common.errors import TOLERANCE, Refused
from .report import report


def add_arguments(p: argparse.ArgumentParser) -> None:
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
        "--check",
        action="store_true",
        help="run Keras on the Keras side and torch on the other, layer by layer and in two "
        "chunks with the state; exit 1 above 1e-5 (OUT is then not written)",
    )


TORCH = (".pt", ".safetensors")
OUT_EXTS = (".keras", ".weights.h5", ".pt", ".safetensors")


def _is_torch(path: Path) -> bool:
    return path.name.lower().endswith(TORCH)


def run(args: argparse.Namespace) -> int:
    """Convert IN to OUT (by their extensions); with --check, Keras against torch."""
    src, dst = Path(args.src), Path(args.dst)
    check_new_file(dst, "port")
    if not dst.name.lower().endswith(OUT_EXTS):
        raise Refused(f"{dst}: unknown output format; use {', '.join(OUT_EXTS)}")
    if args.check and _is_torch(src) and _is_torch(dst):
        raise Refused("--check compares Keras with torch: IN or OUT must be a Keras file")
    return _port(src, dst, args.arch, args.check)


def _port(src: Path, dst: Path, arch_arg: str | None, check: bool) -> int:
    from ..port.check import compare, keras_available
    from ..port.model import load_keras_model, save_keras_model

    if check:
        keras_available()
    model = load_keras_model(src, arch_arg)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / dst.name
        save_keras_model(model, tmp)
        worst = 0.0
        if check:
            arch = None
            if tmp.name.lower().endswith(".weights.h5"):
                arch = Path(d) / "architecture.json"
                arch.write_text(json.dumps(model.keras_config()))
            if _is_torch(src):  # torch -> Keras: Keras runs OUT, torch runs IN
                worst = compare(model, tmp, arch)
            else:  # Keras -> anything: Keras runs IN, torch runs OUT as read back
                worst = compare(load_keras_model(tmp, arch), src, arch_arg and Path(arch_arg))
        if worst > TOLERANCE:
            report(f"not written: {dst} (the check failed)")
            return 1
        with atomic_path(dst, replace=False) as part:  # a racing writer that won: kept
            shutil.copyfile(tmp, part)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report(
        f"wrote {dst}: {len(model.layers)} layers, {n} parameters (from {model.source_format})",
        [dst],
    )
    return 0
