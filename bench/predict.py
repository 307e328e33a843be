"""Stateful prediction of the 1251-point test series: torch's one pass vs Keras's
predict_on_batch loop (and Keras's stateless predict). Prints JSON medians."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _median_s(fn, repeats: int) -> float:
    fn()  # warm-up (graph building, first-call allocations)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--keras", action="store_true")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    import torch

    from torch_rnnsin.lesson.data import sine_wave, split_series
    from torch_rnnsin.lesson.model import SinRNN
    from torch_rnnsin.lesson.predict import predict_stateful, predict_stateless

    torch.set_num_threads(1)
    _, test = split_series(sine_wave()["sin_t"].to_numpy())
    test = test.astype(np.float32)
    model = SinRNN(1).to(args.device)
    res = {
        "n_points": len(test),
        "torch_stateful_s": _median_s(lambda: predict_stateful(model, test), 50),
        "torch_stateless_s": _median_s(lambda: predict_stateless(model, test, 2), 50),
    }
    if args.keras:
        import keras_ref

        km = keras_ref.define_model(2)
        res["keras_stateful_s"] = _median_s(lambda: keras_ref.predict_stateful(km, test), 3)
        res["keras_stateless_s"] = _median_s(lambda: keras_ref.predict_stateless(km, test, 2), 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
