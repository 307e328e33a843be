"""Attention layers: Attention (Luong: dot / concat scores), AdditiveAttention (Bahdanau),
MultiHeadAttention (default attention axes, rank-3 inputs).

Attention   [q, v(, k)] -> softmax(scores(q, k) - 1e9 * ~mask) @ v, zeroed where q is masked
    scale () / concat_score_weight () -> own parameters, as is
AdditiveAttention   scores = sum(scale * tanh(q + k), -1); scale (D,) -> scale
MultiHeadAttention  query_dense/key_dense/value_dense kernel (E, N, H), bias (N, H);
    output_dense kernel (N, Hv, O), bias (O,)  -> own einsum modules, as is

Masks: the query's and value's Keras masks (Embedding(mask_zero) or Masking upstream), the
``mask=`` / ``attention_mask=`` call arguments and ``use_causal_mask``; the output keeps the
query's mask, as Keras's does. Masked scores get -1e9 added (Keras's float32 constant).
"""

from __future__ import annotations

import torch
from torch import nn

from ..tables import Part, Row
from .base import Block, Layer, Spec, kind, with_shape

BIG = 1.0e9  # Keras's padding bias for float32 scores


def _causal(tq: int, tv: int, device) -> torch.Tensor:
    return torch.ones(tq, tv, dtype=torch.bool, device=device).tril()  # (Tq, Tv): row >= col


def _seq(layer: Layer, s: Spec, what: str) -> Spec:
    if len(s.shape) != 2 or s.shape[-1] is None or s.dtype != "float32":
        raise layer.fail(f"{what} must be float32 (batch, time, features), got (batch, {s.shape})")
    return s


class Attention(Block):
    """Keras's dense attention; ``mode``: "dot", "concat" or "additive"."""

    takes_mask = True
    own_code = "Keras's score formulas and -1e9 padding bias (no torch module computes them)"

    def __init__(self, layer: Layer, y: Spec, mode: str, use_scale: bool, dim: int):
        super().__init__(layer, [y])
        self.mode = mode
        self.scale = (
            nn.Parameter(torch.empty(dim if mode == "additive" else ())) if use_scale else None
        )
        self.concat_score_weight = nn.Parameter(torch.empty(())) if mode == "concat" else None
        self.config = {"use_scale": use_scale, "dropout": 0.0}
        if mode != "additive":
            self.config["score_mode"] = mode

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if self.mode == "dot":
            s = q @ k.transpose(-1, -2)  # (B, Tq, Tv)
            return s * self.scale if self.scale is not None else s
        t = q.unsqueeze(-2) + k.unsqueeze(-3)  # (B, Tq, Tv, D)
        if self.mode == "additive":
            t = torch.tanh(t)
            return (t * self.scale if self.scale is not None else t).sum(-1)
        t = torch.tanh(t * self.scale if self.scale is not None else t)
        return self.concat_score_weight * t.sum(-1)

    def mixes_steps(self) -> str | None:
        return "attention weighs time steps against each other"

    def forward(self, q, v, k=None, mask=None, causal: bool = False):
        qm, vm = [*mask, None, None][:2] if mask is not None else (None, None)
        s = self.scores(q, v if k is None else k)  # (B, Tq, Tv)
        keep = None if vm is None else vm.unsqueeze(-2)  # (B, 1, Tv)
        if causal:
            c = _causal(s.shape[-2], s.shape[-1], s.device).unsqueeze(0)  # (1, Tq, Tv)
            keep = c if keep is None else keep & c
        if keep is not None:
            s = s - BIG * (~keep).to(s.dtype)
        y = torch.softmax(s, dim=-1) @ v  # (B, Tq, D)
        return y if qm is None else y * qm.unsqueeze(-1).to(y.dtype)

    def check_call(self, args: list, kwargs: dict) -> None:
        if kwargs.get("return_attention_scores"):
            raise self._fail("return_attention_scores=True (a second output) is not supported")

    def apply(self, xs, masks, kwargs, state=None):
        self.check_call(xs, kwargs)
        mask = kwargs.get("mask", masks if any(m is not None for m in masks) else None)
        y = self(*xs, mask=mask, causal=bool(kwargs.get("use_causal_mask", False)))
        return [y], (mask[0] if mask else None), None

    def _fail(self, why: str):
        return Layer(self.keras_class, self.keras_name, {}).fail(why)

    def parts(self) -> list[Part]:
        rows = [Row("scale", "scale")] if self.scale is not None else []
        if self.concat_score_weight is not None:
            rows.append(Row("concat_score_weight", "concat_score_weight"))
        return [Part("", self, tuple(rows))] if rows else []

    def describe(self) -> list[str]:
        return [f"  -> {self.mode} attention scores, softmax over the value's time axis, own code"]


@kind("Attention", "AdditiveAttention")
def attention(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check({"use_scale", "score_mode"})
    use_scale = layer.option("use_scale", layer.cls == "AdditiveAttention", kind=bool)
    if layer.cls == "AdditiveAttention":
        mode = "additive"
        if "score_mode" in layer.cfg:
            raise layer.refuse("score_mode", layer.cfg["score_mode"], "AdditiveAttention has none")
    else:
        mode = layer.option("score_mode", "dot", allowed=("dot", "concat"))
    if len(inputs) not in (2, 3):
        raise layer.fail(f"takes [query, value] or [query, value, key], got {len(inputs)} input(s)")
    q, v = _seq(layer, inputs[0], "query"), _seq(layer, inputs[1], "value")
    k = _seq(layer, inputs[2], "key") if len(inputs) == 3 else v
    if q.shape[-1] != k.shape[-1]:
        raise layer.fail(f"query and key feature sizes differ ({q.shape[-1]} vs {k.shape[-1]})")
    y = with_shape(q, (q.shape[0], v.shape[-1]))
    return Attention(layer, y, mode, use_scale, q.shape[-1])


class EinsumDense(nn.Module):
    """Keras's EinsumDense as MultiHeadAttention uses it: kernel and bias kept in Keras's shape."""

    def __init__(self, eq: str, kernel: tuple[int, ...], bias: tuple[int, ...] | None):
        super().__init__()
        self.eq = eq
        self.kernel = nn.Parameter(torch.empty(kernel))
        self.bias = nn.Parameter(torch.empty(bias)) if bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum(self.eq, x, self.kernel)
        return y + self.bias if self.bias is not None else y

    def rows(self) -> tuple[Row, ...]:
        return (Row("kernel", "kernel"),) + (
            (Row("bias", "bias"),) if self.bias is not None else ()
        )


class MultiHeadAttention(Block):
    own_code = "Keras's kernel layout (E, heads, dim) kept as is: einsum, no reshaping of weights"

    def __init__(
        self,
        layer: Layer,
        y: Spec,
        e: tuple[int, int, int],
        n: int,
        kd: int,
        vd: int,
        o: int,
        bias: bool,
    ):
        super().__init__(layer, [y])
        eq, ek, ev = e
        self.query_dense = EinsumDense("abc,cde->abde", (eq, n, kd), (n, kd) if bias else None)
        self.key_dense = EinsumDense("abc,cde->abde", (ek, n, kd), (n, kd) if bias else None)
        self.value_dense = EinsumDense("abc,cde->abde", (ev, n, vd), (n, vd) if bias else None)
        self.output_dense = EinsumDense("abcd,cde->abe", (n, vd, o), (o,) if bias else None)
        self.inv_sqrt = 1.0 / float(kd) ** 0.5
        self.config = {
            "num_heads": n,
            "key_dim": kd,
            "value_dim": vd,
            "dropout": 0.0,
            "use_bias": bias,
            "output_shape": [o],
            "attention_axes": [1],
        }

    def mixes_steps(self) -> str | None:
        return "attention weighs time steps against each other"

    def forward(self, q, v, k=None, attention_mask=None):
        k = v if k is None else k
        qh = self.query_dense(q) * self.inv_sqrt  # (B, T, N, H)
        kh, vh = self.key_dense(k), self.value_dense(v)  # (B, S, N, H), (B, S, N, Hv)
        s = torch.einsum("aecd,abcd->acbe", kh, qh)  # (B, N, T, S)
        if attention_mask is not None:
            s = s + (1.0 - attention_mask.unsqueeze(1).to(s.dtype)) * -BIG
        w = torch.softmax(s, dim=-1)
        out = torch.einsum("acbe,aecd->abcd", w, vh)  # (B, T, N, Hv)
        return self.output_dense(out)  # (B, T, O)

    def check_call(self, xs: list, kwargs: dict) -> None:
        known = ("attention_mask", "use_causal_mask", "query_mask", "value_mask", "key_mask")
        bad = sorted(k for k in kwargs if k not in known and k != "return_attention_scores")
        if kwargs.get("return_attention_scores"):
            bad.append("return_attention_scores=True (a second output)")
        if bad or len(xs) not in (2, 3):
            why = f"call arguments {bad}" if bad else f"{len(xs)} tensor arguments"
            raise Layer(self.keras_class, self.keras_name, {}).fail(f"{why} are not supported")

    def apply(self, xs, masks, kwargs, state=None):
        self.check_call(xs, kwargs)
        q, v = xs[0], xs[1]
        masks = list(masks) + [None] * 3
        for i, k in ((1, "value_mask"), (2, "key_mask")):  # by name: replace the inputs' masks
            if kwargs.get(k) is not None:
                masks[i] = kwargs[k].to(torch.bool)
        # query_mask=: Keras 3 ignores it, the query tensor's own mask is used (as here)
        keep = kwargs.get("attention_mask")
        keep = None if keep is None else keep.to(torch.bool)  # (B, T, S)
        auto = []
        if masks[0] is not None:
            auto.append(masks[0].unsqueeze(-1))  # (B, T, 1)
        for m in masks[1 : len(xs)]:
            if m is not None:
                auto.append(m.unsqueeze(-2))  # (B, 1, S)
        if kwargs.get("use_causal_mask"):
            auto.append(_causal(q.shape[1], v.shape[1], q.device).unsqueeze(0))  # (1, T, S)
        for m in auto:
            keep = m if keep is None else keep & m
        if keep is not None:
            keep = keep.expand(q.shape[0], q.shape[1], v.shape[1])
        y = self(*xs, attention_mask=keep)
        return [y], masks[0], None

    def parts(self) -> list[Part]:
        subs = ("query_dense", "key_dense", "value_dense", "output_dense")
        return [Part(s, getattr(self, s), getattr(self, s).rows()) for s in subs]

    def describe(self) -> list[str]:
        c = self.config
        return [
            f"  -> {c['num_heads']} heads, key_dim {c['key_dim']}, value_dim {c['value_dim']}: einsum, own code"
        ]


def _int_or_1(layer: Layer, key: str):
    value = layer.cfg.get(key)
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    return value


@kind("MultiHeadAttention", tensor_args=("query", "value", "key"))
def multi_head_attention(layer: Layer, inputs: list[Spec]) -> Block:
    layer.check(
        {"num_heads", "key_dim", "value_dim", "use_bias", "output_shape", "attention_axes",
         "use_gate", "sliding_window", "softmax_robust_masking", "query_shape", "key_shape",
         "value_shape", "flash_attention"}
    )  # fmt: skip
    n = layer.option("num_heads", kind=int)
    kd = layer.option("key_dim", kind=int)
    vd = layer.cfg.get("value_dim") or kd
    if isinstance(vd, bool) or not isinstance(vd, int) or vd < 1:
        raise layer.refuse("value_dim", vd, "a positive integer")
    bias = layer.option("use_bias", True, kind=bool)
    for key in ("use_gate", "softmax_robust_masking"):
        layer.option(key, False, allowed=(False,))
    layer.option("sliding_window", None, allowed=(None,))
    if layer.cfg.get("flash_attention") not in (None, False, True):
        raise layer.refuse("flash_attention", layer.cfg["flash_attention"], "true, false or null")
    if len(inputs) not in (2, 3):
        raise layer.fail(f"takes (query, value[, key]), got {len(inputs)} tensor(s)")
    q, v = _seq(layer, inputs[0], "query"), _seq(layer, inputs[1], "value")
    k = _seq(layer, inputs[2], "key") if len(inputs) == 3 else v
    axes = _int_or_1(layer, "attention_axes")
    if axes not in (None, 1, -2):
        raise layer.refuse(
            "attention_axes", layer.cfg.get("attention_axes"), "the default (the time axis)"
        )
    o = _int_or_1(layer, "output_shape")
    o = q.shape[-1] if o is None else o
    if isinstance(o, bool) or not isinstance(o, int) or o < 1:
        raise layer.refuse("output_shape", layer.cfg.get("output_shape"), "one positive integer")
    y = with_shape(q, (q.shape[0], o))
    return MultiHeadAttention(layer, y, (q.shape[-1], k.shape[-1], v.shape[-1]), n, kd, vd, o, bias)
