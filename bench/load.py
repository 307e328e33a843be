"""Loading a large model file: LSTM(1024) x 4 (about 119 MB of float32 weights, W) saved by
Keras 3 as ``.h5``, ``.weights.h5`` and ``.keras``. Each contender runs in a fresh process
(rounds interleaved, medians): the time of the load alone (imports excluded), and its peak
memory above the process's memory before the load (ru_maxrss), as a multiple of W.

    floor           plain h5py, every dataset read into numpy (Keras-free, no checks)
    io.read_keras   this package's reader: every check, HDF5 parsed in an isolated child
    before          the reader of another revision (``--before REV``: its port/formats.py)
    load_keras_model  the whole port (reader + torch model)

``python -m bench.load [--rounds 5] [--before main]`` prints a markdown table and, with
``--json``, the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(tempfile.gettempdir()) / "torch_rnnsin-bench-load"
BUILD = """
import sys, numpy as np, keras
from pathlib import Path
out = Path(sys.argv[1])
m = keras.Sequential([keras.Input((None, 1))] + [keras.layers.LSTM(1024, return_sequences=True)
                                                  for _ in range(4)])
rng = np.random.default_rng(0)
m.set_weights([rng.uniform(-0.1, 0.1, w.shape).astype("float32") for w in m.get_weights()])
m.save(out / "m.h5"); m.save_weights(out / "m.weights.h5"); m.save(out / "m.keras")
(out / "m.json").write_text(m.to_json())
"""
FILES = {
    ".h5": ("m.h5", None),
    ".weights.h5": ("m.weights.h5", "m.json"),
    ".keras": ("m.keras", None),
}


def build() -> Path:
    if not (CACHE / "m.json").exists():
        CACHE.mkdir(exist_ok=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run([sys.executable, "-c", BUILD, str(CACHE)], check=True, env=env)
    return CACHE


def floor(path: Path) -> list:
    import io
    import zipfile

    import h5py

    source = path
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            source = io.BytesIO(z.read("model.weights.h5"))
    arrays = []
    with h5py.File(source, "r") as h5:
        h5.visititems(lambda n, o: arrays.append(o[()]) if isinstance(o, h5py.Dataset) else None)
    return arrays


def one(contender: str, path: Path, arch: Path | None, before: Path | None) -> dict:
    """In a fresh process: import what the contender needs, then time its load alone."""
    import h5py  # noqa: F401
    import numpy as np  # noqa: F401
    import torch  # noqa: F401

    if contender == "io.read_keras":
        from torch_rnnsin.port.io import read_keras as fn
    elif contender == "before":
        import importlib.util

        spec = importlib.util.spec_from_file_location("formats_before", before)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["formats_before"] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        fn = mod.read_keras
    elif contender == "load_keras_model":
        from torch_rnnsin.port.model import load_keras_model as fn
    else:
        fn = None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    result = floor(path) if fn is None else fn(path, arch) if arch else fn(path)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    return {"s": wall, "peak_kib": peak - base}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", help="a git revision whose port/formats.py is measured too")
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        contender, path, arch, before = args.one
        out = one(
            contender,
            Path(path),
            Path(arch) if arch != "-" else None,
            Path(before) if before != "-" else None,
        )
        print(json.dumps(out))
        return
    d = build()
    w = sum(a.nbytes for a in floor(d / "m.h5"))
    contenders = ["floor", "io.read_keras", "load_keras_model"]
    before = "-"
    if args.before:
        src = subprocess.run(
            ["git", "show", f"{args.before}:torch_rnnsin/port/formats.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (d / "formats_before.py").write_text(src)
        before = str(d / "formats_before.py")
        contenders.insert(2, "before")
    res: dict = {f: {c: [] for c in contenders} for f in FILES}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for r in range(args.rounds):
        for fmt, (name, arch) in FILES.items():
            for c in contenders:
                a = str(d / arch) if arch else "-"
                cmd = [sys.executable, "-m", "bench.load", "--one", c, str(d / name), a, before]
                out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
                if out.returncode:
                    raise RuntimeError(out.stderr[-2000:])
                res[fmt][c].append(json.loads(out.stdout))
            print(f"round {r + 1}/{args.rounds} {fmt}", file=sys.stderr)
    table = {
        fmt: {
            c: {
                "s": statistics.median(x["s"] for x in runs),
                "peak_w": statistics.median(x["peak_kib"] for x in runs) * 1024 / w,
            }
            for c, runs in by.items()
        }
        for fmt, by in res.items()
    }
    if args.json:
        print(json.dumps({"weight_bytes": w, "table": table}))
        return
    print("\n".join(lines(w, table, args.rounds)))


def lines(w: int, table: dict, rounds: int) -> list[str]:
    out = [
        f"LSTM(1024) x 4, W = {w / 1e6:.0f} MB of float32 weights; fresh processes, the load "
        f"alone, median of {rounds} rounds; peak = memory above the process's before the load.",
        "",
        "| file | contender | time (ms) | / floor | peak (W) |",
        "|---|---|---:|---:|---:|",
    ]
    for fmt, by in table.items():
        f0 = by["floor"]["s"]
        for c, v in by.items():
            out.append(
                f"| {fmt} | {c} | {v['s'] * 1000:.0f} | {v['s'] / f0:.2f}x | {v['peak_w']:.2f} |"
            )
    return out


if __name__ == "__main__":
    main()
