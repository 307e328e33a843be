"""``port`` and ``inspect`` sub-commands: arguments here, heavy imports inside ``run_*``.

Contract with ``cli.py``: ``run_*`` returns the exit code (0, or 1 when ``--check``
finds a difference above 1e-5); bad input raises ``ValueError`` / ``OSError`` with
one line naming the bad value, which the CLI prints with exit 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path


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
        "--check",
        action="store_true",
        help="run Keras on the Keras side and torch on the other, layer by layer and in two "
        "chunks with the state; exit 1 above 1e-5 (OUT is then not written)",
    )


KERAS_IN = (".keras", ".h5")  # .weights.h5 ends with .h5 too
TORCH = (".pt", ".safetensors")
OUT_EXTS = (".keras", ".weights.h5", ".pt", ".safetensors")


def _is_torch(path: Path) -> bool:
    return path.name.lower().endswith(TORCH)


def run_port(args: argparse.Namespace) -> int:
    """Convert IN to OUT (by their extensions); with --check, Keras against torch."""
    import json
    import shutil
    import tempfile

    from ..atomic import atomic_path, check_new_file
    from .model import load_keras_model, save_keras_model

    src, dst = Path(args.src), Path(args.dst)
    check_new_file(dst, "port")
    if not dst.name.lower().endswith(OUT_EXTS):
        raise ValueError(f"{dst}: unknown output format; use {', '.join(OUT_EXTS)}")
    if args.check:
        from .check import keras_available

        if _is_torch(src) and _is_torch(dst):
            raise ValueError("--check compares Keras with torch: IN or OUT must be a Keras file")
        keras_available()
    model = load_keras_model(src, args.arch)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / dst.name
        save_keras_model(model, tmp)
        worst = 0.0
        if args.check:
            from .check import compare

            arch = None
            if tmp.name.lower().endswith(".weights.h5"):
                arch = Path(d) / "architecture.json"
                arch.write_text(json.dumps(model.keras_config()))
            if _is_torch(src):  # torch -> Keras: Keras runs OUT, torch runs IN
                worst = compare(model, tmp, arch)
            else:  # Keras -> anything: Keras runs IN, torch runs OUT as read back
                worst = compare(load_keras_model(tmp, arch), src, args.arch and Path(args.arch))
        if worst > 1e-5:
            print(f"not written: {dst} (the check failed)")
            return 1
        with atomic_path(dst) as part:
            shutil.copyfile(tmp, part)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"wrote {dst}: {len(model.layers)} layers, {n} parameters (from {model.source_format})")
    return 0


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="IN", help="model file to describe")
    p.add_argument(
        "--arch", metavar="FILE", default=None, help="architecture for a bare .weights.h5"
    )


def run_inspect(args: argparse.Namespace) -> int:
    """Print the layer table: Keras layer -> torch module, shapes, transposes, gates, state."""
    from .model import describe_model, load_keras_model

    model = load_keras_model(args.src, args.arch)
    print("\n".join(describe_model(model, str(args.src))))
    return 0
