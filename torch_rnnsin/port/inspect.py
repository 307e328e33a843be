"""``inspect``: the graph (which layer feeds which, shared layers, where state enters) and,
per layer, its torch modules and every tensor's mapping from Keras."""

from __future__ import annotations

from . import tables
from .model import PortedModel, dims_text


def _src(model: PortedModel, tid) -> str:
    for i in model.graph.inputs:
        if i.tid == tid:
            return f"input {i.name!r}"
    name = tid[0].split("/")[-1]
    out = f"{name}" + (f"#{tid[1]}" if model.graph.counts.get(tid[0], 1) > 1 else "")
    return out + (f"[{tid[2]}]" if tid[2] else "")


def describe_model(model: PortedModel, source: str = "") -> list[str]:
    """The layer table: each Keras layer, its torch module, every tensor and how it maps."""
    ins = ", ".join(f"{i.name} {dims_text(i.shape)} {i.dtype}" for i in model.inputs)
    outs = ", ".join(f"{o.name} {dims_text(o.shape)}" for o in model.outputs)
    state = (
        model.state_sizes if model.streamable else f"none carried ({model.why_not_streamable()})"
    )
    lines = [
        f"{source} ({model.source_format or 'model'}): inputs {ins}; outputs {outs}; state sizes {state}"
    ]
    index = {id(b): i for i, b in enumerate(model.layers)}
    seen = set()
    for c in model.graph.calls:
        b = model.block(c)
        feeds = ", ".join(_src(model, t) for t in c.args)
        extra = []
        for k, v in c.kwargs.items():
            refs = v if isinstance(v, list) else [v]
            refs = [r for r in refs if isinstance(r, tuple) and len(r) == 3]
            if refs:
                extra.append(f"{k} from {', '.join(_src(model, r) for r in refs)}")
        shared = (
            f" (call {c.number + 1} of {model.graph.counts[c.layer.path]}, shared weights)"
            if model.graph.counts[c.layer.path] > 1
            else ""
        )
        lines.append(
            f"{b.keras_class} {c.layer.path!r} (layers.{index[id(b)]}) <- {feeds}"
            + (f"; {'; '.join(extra)}" if extra else "")
            + shared
        )
        if id(b) in seen:
            continue
        seen.add(id(b))
        lines += b.describe()
        prefix = f"layers.{index[id(b)]}."
        for p in b.parts():
            mod = next((n for n, m in b.named_modules() if m is p.module), "")
            lines += tables.describe(p, prefix + (f"{mod}." if mod else ""))
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append(f"{n} trainable parameters (as in Keras)")
    return lines
