"""The forward pass read with torch.fx, run once on the example inputs for every value.

torch.nn's own modules stay whole (fx's default leaves); a user's modules are traced
through. Each node keeps the user's source line (file:line: code) for refusals.
"""

from __future__ import annotations

import inspect
import os
import traceback

import torch
import torch.fx
from torch import nn

from ...common.errors import Refused

TORCH_DIR = os.path.dirname(torch.__file__)
OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # torch_rnnsin/port


def _user_frame(frames) -> traceback.FrameSummary | None:
    """The innermost frame outside torch and this package: the user's line."""
    for f in reversed(list(frames)):
        path = os.path.abspath(f.filename)
        if not path.startswith((TORCH_DIR, OWN_DIR)) and "<frozen" not in path:
            return f
    return None


def frame_text(f: traceback.FrameSummary | None) -> str:
    if f is None:
        return ""
    code = (f.line or "").strip()
    return f" at {os.path.basename(f.filename)}:{f.lineno}" + (f": {code}" if code else "")


class Tracer(torch.fx.Tracer):
    """fx's tracer, recording for every node the user's line that made it."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True

    def _filter_traceback_frames(self, summary):
        f = _user_frame(summary)
        return traceback.StackSummary.from_list([f] if f else [])


def where(node: torch.fx.Node) -> str:
    """' at file.py:12: code' for a node, from its recorded stack trace ('' if none)."""
    lines = (node.stack_trace or "").strip().splitlines()
    if len(lines) < 1 or not lines[0].strip().startswith("File "):
        return ""
    head = lines[0].strip()  # File "path", line N, in fn
    try:
        path = head.split('"')[1]
        lineno = int(head.split("line ")[1].split(",")[0])
    except (IndexError, ValueError):
        return ""
    code = lines[1].strip() if len(lines) > 1 else ""
    return f" at {os.path.basename(path)}:{lineno}" + (f": {code}" if code else "")


class Whole(nn.Module):
    """A bare torch.nn module, wrapped so that fx keeps it whole (a leaf)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x, hx=None):
        return self.module(x) if hx is None else self.module(x, hx)


def _drop_guards(graph: torch.fx.Graph, n_inputs: int) -> None:
    """fx checks each defaulted argument it fixed (``state=None``: the placeholders after
    the example inputs) with nodes of its own (``eq``, ``_assert``): drop those checks,
    which compute nothing the model gives."""
    fixed = set([n for n in graph.nodes if n.op == "placeholder"][n_inputs:])
    guard: set[torch.fx.Node] = set()
    for n in graph.nodes:
        if n.op == "call_function" and any(a in fixed or a in guard for a in n.all_input_nodes):
            guard.add(n)
    for n in reversed(list(graph.nodes)):
        if n in guard and all(u in guard for u in n.users):
            graph.erase_node(n)
            guard.discard(n)


def trace(module: nn.Module, example_inputs: tuple) -> tuple[torch.fx.GraphModule, dict]:
    """(graph module, node -> its value on the example inputs). Parameters beyond the
    example inputs keep their defaults (constants while tracing)."""
    if not isinstance(module, nn.Module):
        raise Refused(f"expected a torch nn.Module, got {type(module).__name__}")
    if type(module).__module__.startswith("torch.nn.") and not isinstance(module, nn.Sequential):
        module = Whole(module)
    params = list(inspect.signature(module.forward).parameters.values())
    if len(example_inputs) > len(params):
        raise Refused(
            f"{type(module).__name__}.forward takes {len(params)} arguments; "
            f"{len(example_inputs)} example inputs given"
        )
    concrete = {}
    for p in params[len(example_inputs) :]:
        if p.default is inspect.Parameter.empty:
            raise Refused(f"{type(module).__name__}.forward: no example input for {p.name!r}")
        concrete[p.name] = p.default
    tracer = Tracer()
    try:
        graph = tracer.trace(module, concrete_args=concrete or None)
    except (torch.fx.proxy.TraceError, RuntimeError, TypeError) as e:  # fx's own refusals
        f = _user_frame(traceback.extract_tb(e.__traceback__))
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Refused(f"torch.fx cannot trace the forward pass ({msg}){frame_text(f)}") from None
    _drop_guards(graph, len(example_inputs))
    gm = torch.fx.GraphModule(module, graph)
    values: dict[torch.fx.Node, object] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            values[n] = out = super().run_node(n)
            return out

    try:
        with torch.no_grad():
            Recorder(gm).run(*example_inputs)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Refused(f"the module fails on the example inputs: {msg}") from None
    return gm, values
