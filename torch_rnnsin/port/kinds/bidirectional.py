"""Bidirectional(SimpleRNN / LSTM / GRU / RNN(cell)): a forward and a backward layer, merged.

The backward layer reads the sequence reversed; with return_sequences its outputs are flipped
back in time before the merge (concat, sum, mul, ave, or None: two outputs). Not streamable.
Keras 2 files carry no backward_layer: it is the forward layer's config, reading reversed.
"""

from __future__ import annotations

import torch

from ..tables import Part
from .base import Block, Layer, Spec, build, entry, kind, time_input
from .recurrent import Recurrent

MERGES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Block):
    streamable = False
    not_streamable = "it reads the whole sequence backwards"

    def __init__(self, layer: Layer, mode: str | None, fwd: Recurrent, bwd: Recurrent, x: Spec):
        y = fwd.output_specs[0]
        if mode == "concat":
            y = Spec((*y.shape[:-1], 2 * y.shape[-1]))
        ys = [y, y] if mode is None else [y]
        states = fwd.output_specs[1:] + bwd.output_specs[1:]
        super().__init__(layer, ys + states)
        self.merge_mode, self.forward_layer, self.backward_layer = mode, fwd, bwd
        self.return_sequences, self.return_state = fwd.return_sequences, fwd.return_state
        self.config = {"merge_mode": mode}

    def merge(self, y: torch.Tensor, y_rev: torch.Tensor) -> list[torch.Tensor]:
        if self.return_sequences:
            y_rev = y_rev.flip(1)  # Keras re-aligns the backward outputs in time
        m = self.merge_mode
        if m == "concat":
            return [torch.cat([y, y_rev], dim=-1)]
        if m == "sum":
            return [y + y_rev]
        if m == "mul":
            return [y * y_rev]
        if m == "ave":
            return [(y + y_rev) / 2]
        return [y, y_rev]

    def run(self, x, init, mask):
        n = len(self.forward_layer.state_sizes)
        f_init = None if init is None else init[:n]
        b_init = None if init is None else init[n:]
        y, sf = self.forward_layer.run(x, f_init, mask)
        y_rev, sb = self.backward_layer.run(x, b_init, mask)
        return self.merge(y, y_rev), sf + sb

    def forward(self, x: torch.Tensor, *state: torch.Tensor):
        ys, new = self.run(x, list(state) or None, None)
        outs = ys + (new if self.return_state else [])
        return outs[0] if len(outs) == 1 else tuple(outs)

    def apply(self, xs, masks, kwargs, state=None):
        init = kwargs.get("initial_state")
        mask = kwargs.get("mask", masks[0] if masks else None)
        ys, new = self.run(xs[0], init, mask)
        outs = ys + (new if self.return_state else [])
        return outs, (mask if self.return_sequences else None), None

    def parts(self) -> list[Part]:
        out = []
        for half in ("forward_layer", "backward_layer"):
            for p in getattr(self, half).parts():
                out.append(Part(f"{half}/{p.sub}", p.module, p.rows))
        return out

    def keras_entry(self) -> dict:
        cfg = {
            "name": self.keras_name,
            "merge_mode": self.merge_mode,
            "layer": self.forward_layer.keras_entry(),
            "backward_layer": self.backward_layer.keras_entry(),
        }
        return entry("Bidirectional", cfg)

    def describe(self) -> list[str]:
        lines = [
            f"  merge_mode={self.merge_mode!r}; the backward layer reads the sequence reversed"
        ]
        for half in ("forward_layer", "backward_layer"):
            inner = getattr(self, half)
            lines.append(f"  {half}: {inner.keras_class} {inner.keras_name!r}")
            lines += [f"  {line}" for line in inner.describe()[:-1]]
        return [*lines, "    state: none carried (reads the whole sequence)"]


@kind("Bidirectional", states_as_inputs=True)
def bidirectional(layer: Layer, inputs: list[Spec]) -> Block:
    x = time_input(layer, inputs)
    layer.check({"layer", "backward_layer", "merge_mode"})
    mode = layer.option("merge_mode", "concat", allowed=MERGES)
    inner = layer.sub("layer")
    if inner.cls not in ("SimpleRNN", "LSTM", "GRU", "RNN"):
        raise layer.refuse("layer", inner.cls, "a SimpleRNN, LSTM, GRU or RNN layer")
    fwd = build(inner, [x])
    if layer.cfg.get("backward_layer") is not None:
        back = layer.sub("backward_layer")
    else:  # Keras 2: the backward layer is the forward one, reading reversed
        cfg = dict(inner.cfg, go_backwards=not inner.cfg.get("go_backwards", False))
        back = Layer(
            inner.cls,
            f"backward_{inner.name}",
            cfg,
            layer.keras,
            f"{layer.path}/backward_{inner.name}",
        )
    if back.cls != inner.cls:
        raise layer.refuse(
            "backward_layer", back.cls, f"the same class as the forward layer ({inner.cls})"
        )
    bwd = build(back, [x])
    if bwd.output_specs != fwd.output_specs or bwd.go_backwards == fwd.go_backwards:
        raise layer.refuse(
            "backward_layer", back.name, "same units and return options, reading the other way"
        )
    return Bidirectional(layer, mode, fwd, bwd, x)
