"""The recurrent fast paths equal the slow ones: a padded mask run as one packed fused call
against the step loop, and a streamed step in the cell's own maths against the fused call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from port_helpers import keras_arrays, layer, sequential

from torch_rnnsin.port.kinds.recurrent import Cell, contiguous
from torch_rnnsin.port.model import build_model

KINDS = [
    ("SimpleRNN", {"activation": "tanh"}),
    ("SimpleRNN", {"activation": "relu"}),
    ("LSTM", {"recurrent_activation": "sigmoid"}),
    ("GRU", {"recurrent_activation": "sigmoid", "reset_after": True}),
]
B, T, F, H = 7, 9, 3, 5


def cell(kind: str, opts: dict, use_bias: bool = True, seed: int = 0) -> Cell:
    o = {"units": H, "activation": "tanh", "use_bias": use_bias, **opts}
    c = Cell(kind, o, F, 3)
    assert not c.own
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in c.rnn.parameters():
            if p.requires_grad:
                p.copy_(torch.rand(p.shape, generator=gen) * 1.6 - 0.8)
    return c


def masks(seed: int) -> dict[str, torch.Tensor]:
    """(B, T) masks: pre-, post-padded, holed, all-masked rows, none masked, mixed."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(0, T + 1, (B,), generator=g)  # 0 (all masked) ... T (none)
    n[0], n[1] = 0, T
    t = torch.arange(T)
    post = t[None] < n[:, None]
    pre = t[None] >= (T - n)[:, None]
    holed = post.clone()
    holed[2, 1], holed[2, 4] = False, True
    mixed = torch.where(torch.arange(B)[:, None] % 2 == 0, pre, post)
    return {
        "pre": pre,
        "post": post,
        "mixed": mixed,
        "none-masked": torch.ones(B, T, dtype=torch.bool),
        "all-masked": torch.zeros(B, T, dtype=torch.bool),
        "holed": holed,
    }


def test_contiguous_tells_padding_from_holes():
    m = masks(0)
    assert all(contiguous(m[k]) for k in ("pre", "post", "mixed", "none-masked", "all-masked"))
    assert not contiguous(m["holed"])


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("kind", "opts"), KINDS, ids=lambda v: v if isinstance(v, str) else "")
def test_padded_mask_in_one_fused_call_equals_the_step_loop(kind, opts, seed, with_state):
    c = cell(kind, opts, use_bias=seed != 2, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(B, T, F, generator=g)
    state = [torch.randn(B, H, generator=g) for _ in c.state_sizes] if with_state else None
    for name, m in masks(seed).items():
        with torch.no_grad():
            y, s = c.run(x, state, m)
            hx = tuple(v.unsqueeze(0) for v in state) if state else None
            if hx is None:
                zero = x.new_zeros(1, B, H)
                hx = (zero,) * len(c.state_sizes)
            ref_y, ref_s = c.run_steps(x, hx if kind == "LSTM" else hx[0], m)
        assert (y - ref_y).abs().max() <= 1e-6, (name, (y - ref_y).abs().max())
        for a, b in zip(s, ref_s, strict=True):
            assert (a - b).abs().max() <= 1e-6, name
        rows = ~m.any(1)  # all masked: initial state kept, outputs zeros
        assert torch.equal(y[rows], torch.zeros_like(y[rows]))
        if state is not None:
            assert torch.equal(s[0][rows], state[0][rows])


@pytest.mark.parametrize(("kind", "opts"), KINDS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("use_bias", [True, False])
def test_one_streamed_step_equals_the_fused_call(kind, opts, use_bias):
    c = cell(kind, opts, use_bias=use_bias)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 1, F, generator=g)
    state = [torch.randn(1, H, generator=g) for _ in c.state_sizes]
    hx = tuple(s.unsqueeze(0) for s in state) if kind == "LSTM" else state[0].unsqueeze(0)
    with torch.no_grad():
        y, s = c.run(x, state, None)
        ref_y, ref_h = c.rnn(x, hx)
    ref_s = list(ref_h) if kind == "LSTM" else [ref_h]
    assert y.shape == ref_y.shape == (1, 1, H)
    assert (y - ref_y).abs().max() <= 1e-6
    for a, b in zip(s, ref_s, strict=True):
        assert (a - b[0]).abs().max() <= 1e-6


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_model_padded_equals_holed_route(kind, go_backwards, monkeypatch):
    """Through a whole model (Masking, go_backwards): the padded fast path against the step
    loop, which a mask with one hole in another row forces for the whole batch."""
    rng = np.random.default_rng(3)
    entries = [
        layer("Masking", "mask", mask_value=0.0),
        layer(kind, "rnn", units=H, return_sequences=True, go_backwards=go_backwards),
    ]
    model = build_model(sequential(F, *entries), {"rnn": keras_arrays(kind, F, H, rng)})
    x = torch.from_numpy(rng.normal(size=(4, T, F)).astype(np.float32))
    x[0, :3] = 0  # pre-padded
    x[1, 6:] = 0  # post-padded
    x[3] = 0  # all masked
    holed = x.clone()
    holed = torch.cat([holed, holed[:1]])
    holed[4, 5] = 0  # a hole in an extra row: the step loop for the batch
    routes = []
    for name in ("run_padded", "run_steps"):
        real = getattr(Cell, name)
        monkeypatch.setattr(Cell, name, lambda *a, n=name, f=real: routes.append(n) or f(*a))
    with torch.no_grad():
        fast = model(x)
        slow = model(holed)[:4]
    assert routes == ["run_padded", "run_steps"]
    assert (fast - slow).abs().max() <= 1e-6


def test_streaming_model_step_by_step_equals_one_call():
    rng = np.random.default_rng(4)
    entries = [
        layer("LSTM", "a", units=H, return_sequences=True),
        layer("GRU", "b", units=H, return_sequences=True),
    ]
    weights = {"a": keras_arrays("LSTM", F, H, rng), "b": keras_arrays("GRU", H, H, rng)}
    model = build_model(sequential(F, *entries), weights)
    x = torch.from_numpy(rng.normal(size=(1, T, F)).astype(np.float32))
    with torch.no_grad():
        full, s_full = model(x, return_state=True)
        state = [torch.zeros(1, h) for h in model.state_sizes]
        ys = []
        for t in range(T):
            y, state = model(x[:, t : t + 1], state=state, return_state=True)
            ys.append(y)
    assert (torch.cat(ys, 1) - full).abs().max() <= 1e-6
    for a, b in zip(state, s_full, strict=True):
        assert (a - b).abs().max() <= 1e-6
