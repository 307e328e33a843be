"""``python -m bench``: the reference run (1000 epochs, batch 600, seq_len 2) as whole
processes, contenders alternating round by round, medians and ratios to train.py.

    1 Keras fit (keras_ref)
    2 plain PyTorch loop, autograd       3 plain PyTorch loop, hand-derived gradients
    4 train.py (Lightning, hand-derived gradients)
    5 NumPy with hand-derived gradients (the floor for a Python program)

Also: the per-step cost of each training path side by side (``bench.steps``), the
study's time (``study --quick``, and the full grid unless ``--no-full-study``),
stateful prediction of the test series, ``train.py --help`` start-up, and the porter's
recurrent paths (``bench.load``: loading a large file against the plain-h5py floor;
``bench.export``: its ONNX export against ``port``; ``bench.stream``: streaming one step against onnxruntime, batch inference
against Keras's predict_on_batch; ``bench.check``: ``port --check`` against ``port`` and one
Keras import, unless ``--no-check``).
Writes bench/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of one whole process.

    ``os.wait4`` gives this child's own peak memory (``RUSAGE_CHILDREN`` would be
    a running maximum over every child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def contenders(epochs: int, accelerator: str, out: Path) -> dict[str, list[str]]:
    py = sys.executable
    device = "cuda" if accelerator == "gpu" else "cpu"
    return {
        "Keras fit": [
            py,
            "-m",
            "keras_ref",
            "run",
            "--epochs",
            str(epochs),
            "--out",
            str(out / "keras"),
            "--no-predict",
        ],
        "plain PyTorch loop, autograd": [
            py,
            "-m",
            "bench.plain_loop",
            "--epochs",
            str(epochs),
            "--device",
            device,
            "--grads",
            "autograd",
        ],
        "plain PyTorch loop, hand gradients": [
            py,
            "-m",
            "bench.plain_loop",
            "--epochs",
            str(epochs),
            "--device",
            device,
        ],
        "train.py (Lightning)": [
            py,
            "train.py",
            "--epochs",
            str(epochs),
            "--accelerator",
            accelerator,
            "--out",
            str(out / "train"),
        ],
        "NumPy, hand gradients": [py, "-m", "bench.numpy_loop", "--epochs", str(epochs)],
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    p.add_argument(
        "--quick",
        action="store_true",
        help="about a minute: 30 epochs, 2 rounds, no Keras prediction bench",
    )
    p.add_argument("--no-keras", action="store_true", help="leave Keras out")
    p.add_argument(
        "--no-full-study", action="store_true", help="time only `study --quick`, not the full grid"
    )
    p.add_argument("--no-check", action="store_true", help="leave out `port --check` (bench.check)")
    p.add_argument(
        "--only-reference",
        action="store_true",
        help="only the reference run's whole processes (the contenders table, `--help`); "
        "the rest of the results file is kept",
    )
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.md")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.rounds = 30, 2
    tmp = Path(tempfile.mkdtemp(prefix="rnnsin-bench-"))
    cmds = contenders(args.epochs, args.accelerator, tmp)
    if args.no_keras:
        cmds.pop("Keras fit")
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    peaks: dict[str, list[float]] = {k: [] for k in cmds}
    helps: list[float] = []
    try:
        for r in range(args.rounds):
            order = list(cmds) if r % 2 == 0 else list(reversed(cmds))  # alternate, both directions
            for name in order:
                shutil.rmtree(tmp / "train", ignore_errors=True)
                wall, peak, _ = run_timed(cmds[name])
                walls[name].append(wall)
                peaks[name].append(peak)
                print(
                    f"round {r + 1}/{args.rounds}  {name:<24} {wall:7.2f} s  {peak:6.0f} MiB",
                    file=sys.stderr,
                )
            helps.append(run_timed([sys.executable, "train.py", "--help"])[0])
        if args.only_reference:
            write_reference_only(args, cmds, walls, peaks, helps)
            return
        pred_cmd = [
            sys.executable,
            "-m",
            "bench.predict",
            "--device",
            "cuda" if args.accelerator == "gpu" else "cpu",
        ]
        if not args.no_keras and not args.quick:
            pred_cmd.append("--keras")
        pred = json.loads(run_timed(pred_cmd)[2])
        steps = json.loads(run_timed([sys.executable, "-m", "bench.steps"])[2])
        load = None  # the porter's load of a large model file against the plain-h5py floor
        export = None  # its ONNX export against port and the floor
        stream = None  # streaming and batch inference against onnxruntime and Keras
        check = None  # port --check against port + one Keras import
        if not args.no_keras and not args.quick:
            load = json.loads(run_timed([sys.executable, "-m", "bench.load", "--json"])[2])
            export_cmd = [sys.executable, "-m", "bench.export", "--json"]
            export = json.loads(run_timed([*export_cmd, "--rounds", str(args.rounds)])[2])
            stream_cmd = [sys.executable, "-m", "bench.stream", "--json"]
            stream = json.loads(run_timed([*stream_cmd, "--rounds", str(args.rounds)])[2])
            if not args.no_check:
                check_cmd = [sys.executable, "-m", "bench.check", "--json"]
                check = json.loads(run_timed([*check_cmd, "--rounds", str(args.rounds)])[2])
        study = {}
        for name, flags in (("quick", ["--quick"]), ("full", [])):
            if name == "full" and (args.quick or args.no_full_study):
                continue
            cmd = [sys.executable, "-m", "torch_rnnsin", "study", *flags]
            wall, _, out = run_timed([*cmd, "--out", str(tmp / f"study-{name}")])
            study[name] = (wall, out.strip().splitlines()[-1])
            print(f"study {name}: {wall:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = reference_lines(args, cmds, walls, peaks, helps, pred)
    lines += [
        "",
        f"Per training step, batch {steps['batch']}, seq_len {steps['seq_len']}, hidden 1, "
        "one thread (median):",
        "",
        "| path | ms a step | ms a step per model |",
        "|---|---:|---:|",
        f"| torch, autograd | {steps['torch_autograd_ms']:.3f} | |",
        f"| torch, hand-derived gradients (train.py) | {steps['torch_hand_ms']:.3f} | |",
        f"| the study's batched step, {steps['models']} models | {steps['batched_step_ms']:.3f} "
        f"| {steps['batched_per_model_ms']:.3f} |",
        f"| NumPy, hand-derived gradients | {steps['numpy_hand_ms']:.3f} | |",
        "",
    ]
    for name, (wall, summary) in study.items():
        lines.append(
            f"- `study{' --quick' if name == 'quick' else ''}`: {wall:.1f} s "
            f"as a whole process ({summary.split(';')[0]})"
        )
    if load is not None:
        from bench.load import lines as load_lines

        lines += ["", "## Loading a large model file (`python -m bench.load`)", ""]
        lines += load_lines(load["weight_bytes"], load["table"], 5)
    if export is not None:
        from bench.export import lines as export_lines

        lines += ["", "## ONNX export of that model (`python -m bench.export`)", ""]
        lines += export_lines(export["weight_bytes"], export["table"], export["rounds"])
    if stream is not None:
        from bench.stream import lines as stream_lines

        lines += ["", "## Recurrent inference: streaming and batch (`python -m bench.stream`)", ""]
        lines += stream_lines(stream)
    if check is not None:
        from bench.check import lines as check_lines

        lines += ["", "## `port --check` of that model (`python -m bench.check`)", ""]
        lines += check_lines(check["table"], check["rounds"])
    text = "\n".join(lines) + "\n"
    print(text)
    args.results.write_text(text)


def reference_lines(
    args: argparse.Namespace,
    cmds: dict[str, list[str]],
    walls: dict[str, list[float]],
    peaks: dict[str, list[float]],
    helps: list[float],
    pred: dict | None,
) -> list[str]:
    """The results' first section: the whole processes of the reference run."""
    ref = statistics.median(walls["train.py (Lightning)"])
    lines = [
        f"# Benchmark: the reference run, {args.epochs} epochs, batch 600, seq_len 2",
        "",
        f"{datetime.date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, accelerator {args.accelerator}; whole processes "
        f"(start-up, imports, data, training and, for train.py, its outputs), median of {args.rounds} alternating rounds; "
        f"load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| contender | wall time (s) | peak memory (MiB) | time / train.py |",
        "|---|---:|---:|---:|",
    ]
    for name in cmds:
        med = statistics.median(walls[name])
        lines.append(
            f"| {name} | {med:.2f} | {statistics.median(peaks[name]):.0f} | {med / ref:.2f}x |"
        )
    lines += ["", f"- `train.py --help`: {statistics.median(helps):.2f} s (median of {len(helps)})"]
    if pred is not None:
        lines.append(
            f"- stateful prediction of the {pred['n_points']}-point test series, torch one pass: "
            f"{pred['torch_stateful_s'] * 1000:.2f} ms (stateless: {pred['torch_stateless_s'] * 1000:.2f} ms)"
        )
    if pred is not None and "keras_stateful_s" in pred:
        lines.append(
            f"- the same with Keras, `predict_on_batch` per step: {pred['keras_stateful_s'] * 1000:.0f} ms "
            f"({pred['keras_stateful_s'] / pred['torch_stateful_s']:.0f}x torch); Keras stateless "
            f"`predict`: {pred['keras_stateless_s'] * 1000:.1f} ms"
        )
    if "Keras fit" in cmds:
        k = statistics.median(walls["Keras fit"])
        plain = statistics.median(walls["plain PyTorch loop, hand gradients"])
        lines.append(
            f"- train.py is {k / ref:.1f}x faster than Keras fit and takes "
            f"{ref / plain:.2f}x the plain PyTorch loop's time (same step, hand gradients)"
        )
    return lines


def write_reference_only(
    args: argparse.Namespace,
    cmds: dict[str, list[str]],
    walls: dict[str, list[float]],
    peaks: dict[str, list[float]],
    helps: list[float],
) -> None:
    """``--only-reference``: the first section anew, the rest of the results file (from
    the per-step table on) kept, with the prediction lines of the run that wrote it."""
    lines = reference_lines(args, cmds, walls, peaks, helps, None)
    old = args.results.read_text() if args.results.exists() else ""
    kept = ("- stateful prediction", "- the same with Keras")
    note = " (kept from the earlier run)"
    kept_pred = [
        ln if ln.endswith(note) else ln + note for ln in old.splitlines() if ln.startswith(kept)
    ]
    rest = old[old.index("Per training step") :] if "Per training step" in old else ""
    below = "(This run: `--only-reference`; what follows is kept from the earlier full run.)"
    text = "\n".join([*lines, *kept_pred, "", below, "", rest]).rstrip("\n") + "\n"
    print(text)
    args.results.write_text(text)


if __name__ == "__main__":
    main()
