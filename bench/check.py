"""``port --check`` against a plain ``port``: LSTM(1024) x 4 (W = about 119 MB of float32
weights, the files of ``bench.load``) as ``.h5`` and ``.keras`` (``--weights`` adds the
``.weights.h5`` with ``--arch``). Each contender is a whole fresh process (rounds
interleaved, medians), one thread, TensorFlow's C++ chatter off:

    port          python -m torch_rnnsin port FILE OUT.pt
    port --check  python -m torch_rnnsin port FILE OUT.pt --check
    Keras import  python -c "import keras" (the import ``--check``'s Keras process pays)
    Keras side    python -m keras_ref.port_check on the inputs --check builds (for the record)

Issue 19's target: ``port --check`` ≤ port + one Keras import + 2 s.

``python -m bench.check [--rounds 3] [--weights] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.load import build

ROOT = Path(__file__).resolve().parents[1]
SLACK_S = 2.0  # the target's allowance above port + one Keras import
FILES = {".h5": ("m.h5", None), ".keras": ("m.keras", None)}
WEIGHTS = {".weights.h5": ("m.weights.h5", "m.json")}
CONTENDERS = ["port", "port --check", "Keras import", "Keras side"]


def commands(d: Path, name: str, arch: str | None, out: Path) -> dict[str, list[str]]:
    py = sys.executable
    a = ["--arch", str(d / arch)] if arch else []
    port = [py, "-m", "torch_rnnsin", "port", str(d / name), str(out / "m.pt"), *a]
    side = [py, "-m", "keras_ref.port_check", f"--inputs={out / 'x.npz'}", f"--out={out / 'y.npz'}"]
    side += [f"--arch={d / arch}"] if arch else []
    side += ["--", str(d / name)]
    return {
        "port": port,
        "port --check": [*port, "--check"],
        "Keras import": [py, "-c", "import keras"],
        "Keras side": side,
    }


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--weights", action="store_true", help="also the .weights.h5 with --arch")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    d = build()
    files = {**FILES, **(WEIGHTS if args.weights else {})}
    out = Path(tempfile.mkdtemp(prefix="rnnsin-bench-check-"))
    # the inputs port --check makes for this model: batch 3, 7 steps, 1 feature
    x = np.random.default_rng(0).standard_normal((3, 7, 1)).astype(np.float32)
    np.savez(out / "x.npz", x0=x)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    res: dict = {f: {c: [] for c in CONTENDERS} for f in files}
    try:
        for r in range(args.rounds):
            for fmt, (name, arch) in files.items():
                cmds = commands(d, name, arch, out)
                order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
                for c in order:
                    (out / "m.pt").unlink(missing_ok=True)  # port never overwrites a file
                    res[fmt][c].append(timed(cmds[c], env))
                walls = "  ".join(f"{c} {res[fmt][c][-1]:.2f} s" for c in CONTENDERS)
                print(f"round {r + 1}/{args.rounds} {fmt}: {walls}", file=sys.stderr)
    finally:
        for f in out.iterdir():
            f.unlink()
        out.rmdir()
    table = {fmt: {c: statistics.median(v) for c, v in by.items()} for fmt, by in res.items()}
    if args.json:
        print(json.dumps({"rounds": args.rounds, "table": table}))
        return
    print("\n".join(lines(table, args.rounds)))


def lines(table: dict, rounds: int) -> list[str]:
    out = [
        "LSTM(1024) x 4; whole fresh processes, one thread (OMP_NUM_THREADS=1), median of "
        f"{rounds} interleaved rounds; target = port + Keras import + {SLACK_S:g} s.",
        "",
        "| file | port (s) | port --check (s) | Keras import (s) | Keras side (s) "
        "| target (s) | met |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for fmt, v in table.items():
        target = v["port"] + v["Keras import"] + SLACK_S
        met = "yes" if v["port --check"] <= target else "NO"
        out.append(
            f"| {fmt} | {v['port']:.2f} | {v['port --check']:.2f} | {v['Keras import']:.2f} "
            f"| {v['Keras side']:.2f} | {target:.2f} | {met} |"
        )
    return out


if __name__ == "__main__":
    main()
