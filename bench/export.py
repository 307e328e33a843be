"""Exporting a large model to ONNX: LSTM(1024) x 4 (W = about 119 MB of float32 weights, the
``.h5`` of ``bench.load``). Each contender runs in a fresh process (rounds interleaved,
medians): the time after the imports, and the peak memory above the process's after the
imports (ru_maxrss), as a multiple of W.

    floor   plain h5py, every dataset read into numpy
    port    load_keras_model + save_keras_model to .pt (what ``port m.h5 m.pt`` does)
    export  load_keras_model + export_onnx (checked in onnxruntime before the file appears)

``python -m bench.export [--rounds 3] [--json]``.
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

from bench.load import build, floor

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ["floor", "port", "export"]


def one(contender: str, path: Path) -> dict:
    import h5py  # noqa: F401
    import numpy as np  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    from torch_rnnsin.export.onnx import export_onnx
    from torch_rnnsin.port.model import load_keras_model, save_keras_model

    out = Path(tempfile.mkdtemp(prefix="rnnsin-bench-export-"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if contender == "floor":
        floor(path)
    else:
        model = load_keras_model(path)
        if contender == "port":
            save_keras_model(model, out / "m.pt")
        else:
            export_onnx(model, out / "m.onnx")
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    return {"s": wall, "peak_kib": peak - base}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]))))
        return
    d = build()
    w = sum(a.nbytes for a in floor(d / "m.h5"))
    res: dict = {c: [] for c in CONTENDERS}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for r in range(args.rounds):
        order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
        for c in order:
            cmd = [sys.executable, "-m", "bench.export", "--one", c, str(d / "m.h5")]
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            res[c].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
    table = {
        c: {
            "s": statistics.median(x["s"] for x in runs),
            "peak_w": statistics.median(x["peak_kib"] for x in runs) * 1024 / w,
        }
        for c, runs in res.items()
    }
    if args.json:
        print(json.dumps({"weight_bytes": w, "rounds": args.rounds, "table": table}))
        return
    print("\n".join(lines(w, table, args.rounds)))


def lines(w: int, table: dict, rounds: int) -> list[str]:
    port = table["port"]["s"]
    out = [
        f"LSTM(1024) x 4 `.h5`, W = {w / 1e6:.0f} MB; fresh processes, one thread, the work "
        f"after the imports, median of {rounds} interleaved rounds; peak = memory above the "
        "process's after the imports (the loaded model included).",
        "",
        "| contender | time (ms) | / port | peak (W) |",
        "|---|---:|---:|---:|",
    ]
    for c, v in table.items():
        out.append(f"| {c} | {v['s'] * 1000:.0f} | {v['s'] / port:.2f}x | {v['peak_w']:.2f} |")
    return out


if __name__ == "__main__":
    main()
