"""``python -m keras_ref run --out DIR [train flags] [--weights FILE] [--init-keras FILE]``

Trains the Keras reference with train.py's settings (or loads --weights), then
writes DIR/keras.weights.h5, DIR/keras_predictions.npz (both prediction modes
and hidden states on the test part) and DIR/keras_metrics.json. This is how
torch_rnnsin's ``compare`` and the benchmark run Keras: in its own process, so
that torch_rnnsin never imports TensorFlow.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import h5py
import numpy as np

from torch_rnnsin.common.args import OneLineParser
from torch_rnnsin.common.atomic import atomic_path, write_json
from torch_rnnsin.lesson.config import validate
from torch_rnnsin.lesson.convert import lesson_config
from torch_rnnsin.lesson.data import make_stream_chunks, make_windows, wave_parts
from torch_rnnsin.lesson.flags import add_config_args, config_from
from torch_rnnsin.lesson.metrics import prediction_mse
from torch_rnnsin.port.io import stamp_weights_file


def parser() -> OneLineParser:
    p = OneLineParser(prog="python -m keras_ref", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["run"])
    add_config_args(p, exclude=("accelerator",))  # Keras runs on the CPU here
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--weights", help="skip training: Keras weights to evaluate")
    p.add_argument("--init-keras", help="initial weights (.weights.h5, .keras or .npz)")
    p.add_argument("--no-predict", action="store_true", help="train only (benchmark)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = config_from(args, accelerator="cpu")
    from torch_rnnsin.lesson.convert import load_keras_weights

    try:
        validate(cfg)
        if args.weights and args.init_keras:
            raise ValueError("--init-keras: not read with --weights (nothing is trained)")
        init = load_keras_weights(args.init_keras) if args.init_keras else None
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import keras

    from . import model as kr

    train, test = wave_parts(cfg.steps_per_cycle, cfg.cycles, cfg.noise, cfg.seed, cfg.test_size)
    t0 = time.perf_counter()
    history: dict = {}
    if args.weights:
        model = kr.define_model(cfg.seq_len, hidden=cfg.hidden)
        model.set_weights(load_keras_weights(args.weights))
    elif cfg.train_mode == "stateless":
        X, y = make_windows(train, cfg.seq_len)
        model, history = kr.train(
            X,
            y,
            make_windows(test, cfg.seq_len),
            hidden=cfg.hidden,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            shuffle=cfg.shuffle,
            lr=cfg.lr,
            initial_weights=init,
            seed=cfg.seed,
        )
    else:
        X, y = make_stream_chunks(train, cfg.seq_len, cfg.streams, cfg.targets)
        model, history = kr.train_stateful(
            X,
            y,
            hidden=cfg.hidden,
            epochs=cfg.epochs,
            lr=cfg.lr,
            initial_weights=init,
            seed=cfg.seed,
        )
    seconds = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "seconds": seconds,
        "train_loss": history.get("loss", [float("nan")])[-1],
        "val_loss": history.get("val_loss", [float("nan")])[-1],
        "keras_version": keras.__version__,
        "lr": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
    }
    if not args.no_predict:
        test = test.astype(np.float32)
        sl, hsl = kr.predict_stateless(model, test, cfg.seq_len)
        t1 = time.perf_counter()
        sf, hsf = kr.predict_stateful(model, test)
        metrics["stateful_predict_seconds"] = time.perf_counter() - t1
        metrics["stateless_mse"] = prediction_mse(sl, test, "stateless", cfg.seq_len)
        metrics["stateful_mse"] = prediction_mse(sf, test, "stateful", cfg.seq_len)
        with atomic_path(args.out / "keras_predictions.npz") as tmp, open(tmp, "wb") as f:
            np.savez(
                f,
                test=test,
                stateless=sl,
                stateless_hidden=hsl,
                stateful=sf,
                stateful_hidden=hsf,
            )
    with atomic_path(args.out / "keras.weights.h5") as tmp:
        model.save_weights(tmp)
        with h5py.File(tmp, "a") as h5:  # the lesson's stamp: read back without --arch
            stamp_weights_file(h5, lesson_config(cfg.hidden))
    write_json(args.out / "keras_metrics.json", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
