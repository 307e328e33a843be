"""``python -m torch_rnnsin compare``: Keras vs torch vs the NumPy witness.

Keras runs in its own process (``python -m keras_ref``), trained with the same
settings or loading ``--keras-model``; its weights are ported to torch and all
three implementations predict the test part in both modes. The table holds the
largest absolute difference of predictions and hidden states for each pair;
the command exits 1 if any exceeds the tolerance (1e-5).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from .atomic import write_json, write_text
from .cli import _Parser, add_config_args, config_from, fail, hidden_from_weights

TOLERANCE = 1e-5


def parser() -> _Parser:
    p = _Parser(prog="python -m torch_rnnsin compare", description=__doc__.split("\n\n")[0])
    add_config_args(p)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the comparison (default: runs/compare-<timestamp>)",
    )
    p.add_argument(
        "--keras-model",
        metavar="FILE",
        default=None,
        help="compare these Keras weights (.weights.h5, .keras, .npz) instead of training Keras",
    )
    p.add_argument(
        "--init-keras", metavar="PATH", default=None, help="initial weights for Keras training"
    )
    return p


def as_dict(stateless: tuple, stateful: tuple) -> dict[str, np.ndarray]:
    """(pred, hidden) of both modes under the names keras_ref writes."""
    (p, h), (q, g) = stateless, stateful
    return {"stateless": p, "stateless_hidden": h, "stateful": q, "stateful_hidden": g}


def diff_table(keras: dict, torch_: dict, numpy_: dict) -> list[dict]:
    """Max |a - b| over the defined (non-NaN) entries, for every quantity and pair."""
    rows = []
    for key in ("stateless", "stateless_hidden", "stateful", "stateful_hidden"):
        k, t, n = keras[key], torch_[key], numpy_[key]
        for a, b in ((k, t), (k, n), (t, n)):
            if not np.array_equal(np.isnan(a), np.isnan(b)):
                raise AssertionError(f"{key}: NaN entries are not aligned")
        rows.append(
            {
                "quantity": key,
                "keras_vs_torch": float(np.nanmax(np.abs(k - t))),
                "keras_vs_numpy": float(np.nanmax(np.abs(k - n))),
                "torch_vs_numpy": float(np.nanmax(np.abs(t - n))),
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


def _strip(argv: list[str]) -> list[str]:
    """The training flags only: without --out/--keras-model (and their values) and --keras."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--out", "--keras-model"):
            skip = True
        elif a != "--keras" and not a.startswith(("--out=", "--keras-model=")):
            kept.append(a)
    return kept


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from .run import RunError, default_out, prepare

    cfg = hidden_from_weights(config_from(args), argv, args.keras_model or args.init_keras)
    stamp = default_out()
    out = args.out or stamp.with_name("compare-" + stamp.name)
    try:
        prepare(cfg, out, args.init_keras)
        if args.keras_model:
            prepare(cfg, out, args.keras_model)  # the same file checks, hidden size included
    except RunError as e:
        return fail(str(e))
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "keras_ref", "run", "--out", str(out)] + _strip(argv)
    cmd += ["--hidden", str(cfg.hidden)]  # also when it was read from the weights file
    if args.keras_model:
        cmd += ["--weights", args.keras_model]
    print("running Keras:", " ".join(cmd[1:]), file=sys.stderr)
    if subprocess.run(cmd).returncode != 0:
        return fail("the Keras reference failed (is the 'keras' extra installed?)", code=1)

    from .convert import keras_to_torch, load_keras_weights
    from .metrics import prediction_mse
    from .numpy_ref import predict_stateful_numpy, predict_stateless_numpy
    from .predict import predict_stateful, predict_stateless

    weights = load_keras_weights(out / "keras.weights.h5")
    with np.load(out / "keras_predictions.npz") as z:
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
    ok = worst <= TOLERANCE
    table = format_table(rows, mses)
    verdict = (
        f"largest difference {worst:.2e}: {'within' if ok else 'OVER'} the tolerance {TOLERANCE:g}"
    )
    print(table + "\n\n" + verdict)
    write_text(out / "compare.md", f"# Keras vs torch vs NumPy\n\n{table}\n\n{verdict}\n")
    write_json(
        out / "compare.json",
        {"rows": rows, "mse": mses, "max_diff": worst, "tolerance": TOLERANCE, "ok": ok},
    )
    return 0 if ok else 1
