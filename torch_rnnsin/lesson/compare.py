"""Keras vs torch vs the NumPy witness, on the same weights (the ``compare`` command).

Keras runs in its own process (``python -m keras_ref``), trained with the same
settings or loading given weights; its weights are ported to torch and all
three implementations predict the test part in both modes. The table holds the
largest absolute difference of predictions and hidden states for each pair;
above the tolerance (1e-5) the comparison fails.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from ..common.atomic import write_json, write_text
from ..common.errors import TOLERANCE
from .config import TrainConfig, flag
from .convert import keras_to_torch, load_keras_weights
from .metrics import prediction_mse
from .numpy_ref import predict_stateful_numpy, predict_stateless_numpy
from .predict import predict_stateful, predict_stateless


def as_dict(stateless: tuple, stateful: tuple) -> dict:
    """(pred, hidden) of both modes under the names keras_ref writes."""
    (p, h), (q, g) = stateless, stateful
    return {"stateless": p, "stateless_hidden": h, "stateful": q, "stateful_hidden": g}


def max_diff(a, b) -> float:
    """Max |a - b| over the entries both define; inf if one has NaN where the other has not."""
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    return float(np.nanmax(np.abs(np.asarray(a, np.float64) - b)))


def diff_table(keras: dict, torch_: dict, numpy_: dict) -> list[dict]:
    """The largest difference of every quantity, for each pair of implementations."""
    rows = []
    for key in ("stateless", "stateless_hidden", "stateful", "stateful_hidden"):
        k, t, n = keras[key], torch_[key], numpy_[key]
        rows.append(
            {
                "quantity": key,
                "keras_vs_torch": max_diff(k, t),
                "keras_vs_numpy": max_diff(k, n),
                "torch_vs_numpy": max_diff(t, n),
            }
        )
    return rows


def format_table(rows: list[dict], mses: dict) -> str:
    lines = ["| quantity | Keras vs torch | Keras vs NumPy | torch vs NumPy |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['quantity']} | {r['keras_vs_torch']:.2e} | {r['keras_vs_numpy']:.2e} | {r['torch_vs_numpy']:.2e} |"
        )
    lines += ["", "| test MSE | Keras | torch | NumPy |", "|---|---|---|---|"]
    for mode in ("stateless", "stateful"):
        lines.append(
            f"| {mode} | "
            + " | ".join(f"{mses[f][mode]:.6e}" for f in ("keras", "torch", "numpy"))
            + " |"
        )
    return "\n".join(lines)


def keras_command(
    cfg: TrainConfig, out: Path, keras_model: str | None, init_keras: str | None
) -> list[str]:
    """``python -m keras_ref run`` with every setting spelled out (none left to its defaults).
    ``RNNSIN_KERAS_RUN_CMD`` may name another command for ``python -m keras_ref`` (the tests
    point it at a Keras process kept warm for the session)."""
    base = os.environ.get("RNNSIN_KERAS_RUN_CMD")
    cmd = [*(shlex.split(base) if base else [sys.executable, "-m", "keras_ref"])]
    cmd += ["run", "--out", str(out)]
    for f in dataclasses.fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name == "accelerator":
            continue
        if f.name == "shuffle":
            cmd += [] if value else [flag("shuffle")]
        else:
            cmd += [flag(f.name), str(value)]
    if keras_model is not None:
        cmd += ["--weights", keras_model]
    if init_keras is not None:
        cmd += ["--init-keras", init_keras]
    return cmd


def run_keras(cmd: list[str]) -> int:
    """Run the Keras reference in its own process (torch_rnnsin never imports TensorFlow)."""
    print("running Keras:", " ".join(cmd[1:]), file=sys.stderr)
    return subprocess.run(cmd).returncode


def evaluate(out: Path, cfg: TrainConfig, tolerance: float = TOLERANCE) -> int:
    """Port Keras's weights in ``out`` to torch, predict with torch and NumPy, compare with
    Keras's own predictions there; write compare.md/json. 0 within ``tolerance``, else 1."""
    weights = load_keras_weights(out / "keras.weights.h5")
    with np.load(out / "keras_predictions.npz", allow_pickle=False) as z:
        keras = dict(z)
    test = keras["test"]
    model = keras_to_torch(weights)
    t = as_dict(predict_stateless(model, test, cfg.seq_len), predict_stateful(model, test))
    n = as_dict(
        predict_stateless_numpy(weights, test, cfg.seq_len), predict_stateful_numpy(weights, test)
    )
    rows = diff_table(keras, t, n)
    mses = {
        name: {
            mode: prediction_mse(d[mode], test, mode, cfg.seq_len)
            for mode in ("stateless", "stateful")
        }
        for name, d in (("keras", keras), ("torch", t), ("numpy", n))
    }
    worst = max(max(r["keras_vs_torch"], r["keras_vs_numpy"], r["torch_vs_numpy"]) for r in rows)
    ok = worst <= tolerance
    table = format_table(rows, mses)
    verdict = (
        f"largest difference {worst:.2e}: {'within' if ok else 'OVER'} the tolerance {tolerance:g}"
    )
    print(table + "\n\n" + verdict)
    write_text(out / "compare.md", f"# Keras vs torch vs NumPy\n\n{table}\n\n{verdict}\n")
    write_json(
        out / "compare.json",
        {"rows": rows, "mse": mses, "max_diff": worst, "tolerance": tolerance, "ok": ok},
    )
    return 0 if ok else 1
