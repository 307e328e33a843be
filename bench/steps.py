"""Per-step cost of each training path on the reference batch (600 windows of
seq_len 2, hidden 1), one thread: torch with autograd, torch with the
hand-derived gradients (train.py's step), the study's batched step (per model),
and NumPy with hand-derived gradients. Prints JSON medians in milliseconds."""

from __future__ import annotations

import argparse
import json

from .timing import median_per_call


def _median_ms(fn, repeats: int, inner: int) -> float:
    return median_per_call(fn, repeats, inner) * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", type=int, default=36, help="models in the study's batch")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    import torch

    from torch_rnnsin.lesson.config import TrainConfig
    from torch_rnnsin.lesson.convert import keras_to_torch, torch_to_keras
    from torch_rnnsin.lesson.data import make_windows, wave_parts
    from torch_rnnsin.lesson.model import SinRNN
    from torch_rnnsin.lesson.numpy_ref import train_numpy
    from torch_rnnsin.lesson.optim import KerasRMSprop
    from torch_rnnsin.lesson.study.trainer import ModelBatch
    from torch_rnnsin.lesson.training import train_step

    torch.set_num_threads(1)
    cfg = TrainConfig()
    train, _ = wave_parts(cfg.steps_per_cycle, cfg.cycles, cfg.noise, cfg.seed, cfg.test_size)
    X, y = make_windows(train, cfg.seq_len)
    xb, yb = torch.from_numpy(X[: cfg.batch_size]), torch.from_numpy(y[: cfg.batch_size])
    torch.manual_seed(0)
    init = torch_to_keras(SinRNN(cfg.hidden))
    res = {"batch": cfg.batch_size, "seq_len": cfg.seq_len, "models": args.models}
    for grads in ("autograd", "hand"):
        m = keras_to_torch(init)
        opt = KerasRMSprop([q for q in m.parameters() if q.requires_grad], lr=1e-6)
        res[f"torch_{grads}_ms"] = _median_ms(
            lambda m=m, opt=opt, g=grads: train_step(m, opt, xb, yb, grads=g), args.repeats, 200
        )
    batch = ModelBatch([init] * args.models)
    xm = xb[:, :, 0].unsqueeze(0).expand(args.models, -1, -1).contiguous()  # (M, B, L)
    ym = yb.unsqueeze(0).expand(args.models, -1, -1).contiguous()  # (M, B, 1)
    lr = torch.full((args.models, 1), 1e-6)
    res["batched_step_ms"] = _median_ms(
        lambda: batch.step(xm, ym, None, False, lr), args.repeats, 50
    )
    res["batched_per_model_ms"] = res["batched_step_ms"] / args.models
    Xn, yn = X[: cfg.batch_size], y[: cfg.batch_size]
    res["numpy_hand_ms"] = _median_ms(
        lambda: train_numpy(init, Xn, yn, batch_size=cfg.batch_size, epochs=1, lr=1e-6),
        args.repeats,
        200,
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
