"""The porter's recurrent run paths against their peers, one thread, fresh processes,
contenders interleaved round by round, medians (issue 19):

    stream  one step at a time (batch 1, T = 1, state carried) of an LSTM(256)x2 and a
            GRU(256)x2 stack: the ported model's ``model(x_t, state=s, return_state=True)``
            against onnxruntime on our own exported file (``export_onnx``), with the floor
            beside it (``torch.mv`` over every weight once a step) and the share of the
            ported model's per-call checks (inputs, state)
    batch   64 x 100 steps, the same stacks: the ported model against Keras's
            ``predict_on_batch`` (TensorFlow at one thread) and onnxruntime

``python -m bench.stream [--rounds 3] [--json]``; ``--measure`` runs one contender in the
process it is given (the driver's child).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .timing import median_per_call

KINDS = ("LSTM", "GRU")
F, H, LAYERS = 32, 256, 2
BATCH, STEPS = 64, 100
CONTENDERS = ("torch", "onnxruntime", "keras")


def _median_us(fn, repeats: int, inner: int) -> float:
    return median_per_call(fn, repeats, inner) * 1e6


def prepare(folder: Path) -> None:
    """A Keras file per kind (seeded weights), and our ONNX export of its port."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    from torch_rnnsin import load_keras_model
    from torch_rnnsin.export.onnx import export_onnx

    keras.utils.set_random_seed(0)
    for kind in KINDS:
        layer = getattr(keras.layers, kind)
        m = keras.Sequential(
            [keras.Input((None, F))] + [layer(H, return_sequences=True) for _ in range(LAYERS)]
        )
        m.save(folder / f"{kind}.keras")
        export_onnx(load_keras_model(folder / f"{kind}.keras"), folder / f"{kind}.onnx")


def measure(who: str, kind: str, folder: Path) -> dict:
    """One contender's medians (µs) in this process, at one thread."""
    import numpy as np

    rng = np.random.default_rng(0)
    xb = rng.normal(size=(BATCH, STEPS, F)).astype(np.float32)
    xs = rng.normal(size=(1, 1, F)).astype(np.float32)
    if who == "keras":
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        m = keras.models.load_model(folder / f"{kind}.keras")
        return {"batch_us": _median_us(lambda: m.predict_on_batch(xb), 7, 2)}
    if who == "onnxruntime":
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads = o.inter_op_num_threads = 1
        sess = ort.InferenceSession(
            str(folder / f"{kind}.onnx"), o, providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in sess.get_inputs()]
        sizes = [H, H] * LAYERS if kind == "LSTM" else [H] * LAYERS
        state = [np.zeros((1, h), np.float32) for h in sizes]

        def step():
            nonlocal state
            out = sess.run(None, dict(zip(names, [xs, *state], strict=True)))
            state = out[1:]

        zeros = [np.zeros((BATCH, h), np.float32) for h in sizes]
        feed = dict(zip(names, [xb, *zeros], strict=True))
        return {
            "step_us": _median_us(step, 9, 300),
            "batch_us": _median_us(lambda: sess.run(None, feed), 7, 2),
        }
    import torch

    from torch_rnnsin import load_keras_model

    torch.set_num_threads(1)
    model = load_keras_model(folder / f"{kind}.keras")
    x1, xt = torch.from_numpy(xs), torch.from_numpy(xb)
    res = {}
    with torch.inference_mode():
        state = [torch.zeros(1, h) for h in model.state_sizes]

        def step():
            nonlocal state
            _, state = model(x1, state=state, return_state=True)

        res["step_us"] = _median_us(step, 9, 300)

        plan = model._state_plan  # what the first call planned (the state's sizes and slices)

        def checks():  # what every call checks before it runs a layer
            model._check_inputs((x1,))
            model._carry(plan, state, 1)

        res["checks_us"] = _median_us(checks, 9, 300)
        ws = [p for p in model.parameters() if p.dim() == 2]
        vs = [torch.randn(w.shape[1]) for w in ws]
        res["floor_us"] = _median_us(
            lambda: [torch.mv(w, v) for w, v in zip(ws, vs, strict=True)], 9, 300
        )
        res["batch_us"] = _median_us(lambda: model(xt), 7, 2)
        torch.set_num_threads(os.cpu_count() or 1)  # torch's default: every core
        res["batch_all_threads_us"] = _median_us(lambda: model(xt), 7, 2)
    return res


def drive(rounds: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="rnnsin-stream-"))
    try:
        return _drive(rounds, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _drive(rounds: int, folder: Path) -> dict:
    py = sys.executable
    subprocess.run(
        [py, "-m", "bench.stream", "--prepare", str(folder)], check=True, capture_output=True
    )
    runs: dict = {}
    for r in range(rounds):
        for kind in KINDS:
            order = CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]
            for who in order:
                cmd = [py, "-m", "bench.stream", "--measure", who, kind, str(folder)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                for k, v in json.loads(out.strip().splitlines()[-1]).items():
                    runs.setdefault(kind, {}).setdefault(f"{who}_{k}", []).append(v)
                print(f"round {r + 1}/{rounds} {kind} {who} done", file=sys.stderr)
    return {kind: {k: statistics.median(v) for k, v in d.items()} for kind, d in runs.items()}


def lines(res: dict) -> list[str]:
    out = [
        f"Streaming, batch 1, one step a call with the state carried, {LAYERS} x {H} units, "
        f"{F} features, one thread (µs a step, median):",
        "",
        "| stack | ported model | onnxruntime | ratio | floor (torch.mv) | per-call checks |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, r in res.items():
        t, o = r["torch_step_us"], r["onnxruntime_step_us"]
        out.append(
            f"| {kind}({H})x{LAYERS} | {t:.0f} | {o:.0f} | {t / o:.2f}x | "
            f"{r['torch_floor_us']:.0f} | {r['torch_checks_us']:.1f} ({100 * r['torch_checks_us'] / t:.1f} %) |"
        )
    out += [
        "",
        f"Batch inference, {BATCH} x {STEPS} steps, one thread (ms a batch, median):",
        "",
        f"| stack | ported model | Keras predict_on_batch | Keras / ported | onnxruntime "
        f"| ported model, {os.cpu_count()} threads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for kind, r in res.items():
        t, k = r["torch_batch_us"] / 1e3, r["keras_batch_us"] / 1e3
        out.append(
            f"| {kind}({H})x{LAYERS} | {t:.1f} | {k:.1f} | {k / t:.2f}x | "
            f"{r['onnxruntime_batch_us'] / 1e3:.1f} | {r['torch_batch_all_threads_us'] / 1e3:.1f} |"
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--prepare", type=Path)
    p.add_argument("--measure", nargs=3, metavar=("WHO", "KIND", "FOLDER"))
    args = p.parse_args()
    if args.prepare:
        prepare(args.prepare)
        return
    if args.measure:
        who, kind, folder = args.measure
        print(json.dumps(measure(who, kind, Path(folder))))
        return
    res = drive(args.rounds)
    print(json.dumps(res) if args.json else "\n".join(lines(res)))


if __name__ == "__main__":
    main()
