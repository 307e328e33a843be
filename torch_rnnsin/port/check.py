"""``port --check``: Keras (in its own process) against torch on the same random inputs.

The inputs are built from the model's input specs: its fixed batch size (else 3), a free
time length of 7, floats from a normal distribution, integer ids uniform in ``[0, high)``
(about a fifth of them 0, so that ``mask_zero`` paths run), boolean masks with at least
one True per row. Keras runs ``keras_ref.port_check`` on the Keras file (several inputs in
Keras's input order); torch runs the ported model. Compared: every layer output both sides
name ("Class 'name'"), every model output, and, for streamable models with at least two
steps, two chunks with the state handed on against Keras's one call. A difference is
judged relative to the size of Keras's value: ``|a - b| <= TOLERANCE * max(1, |b|)``;
both figures are printed.

The Keras side is started as ``python -m keras_ref.port_check`` unless the environment
variable ``RNNSIN_KERAS_CMD`` names another command with the same contract (the tests
point it at a Keras process kept warm for the whole test session).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..common.errors import TOLERANCE, Refused

BATCH, LENGTH = 3, 7  # when the model leaves them free
INT_HIGH = 10  # integer inputs without a known vocabulary size
ZERO_SHARE = 0.2  # share of integer ids set to 0 (the padding id of mask_zero)
Outputs = list[tuple[str, list[np.ndarray]]]


class Spec(NamedTuple):
    """What ``check`` reads of one input spec (the ported model's TensorSpec has these)."""

    name: str
    shape: tuple[int | None, ...]  # batch first, None = free
    dtype: str  # "float32" | "int32" | "int64" | "bool"
    high: int | None = None  # exclusive bound of valid integer values


def keras_available() -> None:
    """Refuse up front (before anything is written) when Keras cannot be run."""
    for name in ("keras", "keras_ref"):
        if importlib.util.find_spec(name) is None:
            raise Refused(
                f"--check runs Keras, but {name!r} is not installed (install the 'keras' extra)"
            )


def input_specs(model: Any) -> list[Spec]:
    """The model's input specs (name, shape with the batch first, dtype, bound of int ids)."""
    return [Spec(s.name, tuple(s.shape), s.dtype, s.high) for s in model.inputs]


def make_inputs(
    specs: Sequence[Spec], seed: int = 0, batch: int = BATCH, length: int = LENGTH
) -> list[np.ndarray]:
    """One array per input spec that the model accepts (see the module's docstring): the
    spec's batch size or ``batch``, ``length`` for every other free size."""
    rng = np.random.default_rng(seed)
    xs = []
    for s in specs:
        shape = (s.shape[0] or batch, *(length if d is None else d for d in s.shape[1:]))
        if s.dtype == "bool":
            x = rng.random(shape) < 0.6
            rows = x.reshape(shape[0], -1)  # (B, rest), a view of x
            rows[~rows.any(axis=1), 0] = True
        elif s.dtype.startswith("int"):
            x = rng.integers(0, s.high or INT_HIGH, size=shape).astype(s.dtype)
            x[rng.random(shape) < ZERO_SHARE] = 0
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        xs.append(x)
    return xs


def keras_command() -> list[str]:
    cmd = os.environ.get("RNNSIN_KERAS_CMD")
    return shlex.split(cmd) if cmd else [sys.executable, "-m", "keras_ref.port_check"]


def run_keras(path: Path, arch: Path | None, xs: Sequence[np.ndarray]) -> Outputs:
    """(layer, outputs) for every Keras layer called once, then ("model output k", [y_k])
    for every model output, from ``keras_ref.port_check`` (in its own process)."""
    with tempfile.TemporaryDirectory() as d:
        x_path, y_path = Path(d) / "x.npz", Path(d) / "y.npz"
        np.savez(x_path, **{f"x{i}": x for i, x in enumerate(xs)})
        cmd = [*keras_command(), f"--inputs={x_path}", f"--out={y_path}"]
        cmd += [f"--arch={arch}"] if arch is not None else []
        cmd += ["--", str(path)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
            raise Refused(lines[-1] if lines else f"Keras exited with {r.returncode}")
        with np.load(y_path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            found = [(n, _numbered(z, f"out_{i}_")) for i, n in enumerate(names)]
            model = _numbered(z, "model_")
    return found + [(f"model output {k}", [y]) for k, y in enumerate(model)]


def _numbered(z, prefix: str) -> list[np.ndarray]:
    n = sum(k.startswith(prefix) for k in z.files)
    return [z[f"{prefix}{j}"] for j in range(n)]


def figures(keras: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max(1, |b|)), b being Keras's; inf where one side is
    NaN or infinite and the other is not the same."""
    b, a = np.asarray(keras, np.float64), np.asarray(ours, np.float64)
    if a.size == 0:
        return 0.0, 0.0
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    d = np.where(same, 0.0, np.where(np.isfinite(d), d, np.inf))
    return float(d.max()), float((d / np.maximum(1.0, np.abs(np.nan_to_num(b)))).max())


def _flat(y: Any) -> list[torch.Tensor]:
    return [t for o in y for t in _flat(o)] if isinstance(y, list | tuple) else [y]


class Table:
    """The printed rows and the largest relative figure seen."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out, self.worst = out, 0.0
        out(f"{'output':44s} {'max |Keras - torch|':>20s} {'max relative':>13s}")

    def row(self, name: str, keras: list[np.ndarray], ours: list[torch.Tensor]) -> None:
        shapes = [a.shape for a in keras], [tuple(t.shape) for t in ours]
        if shapes[0] != shapes[1]:
            self.worst = float("inf")
            self.out(f"{name:44s} shapes differ: Keras {shapes[0]}, torch {shapes[1]}")
            return
        figs = [figures(a, t.detach().cpu().numpy()) for a, t in zip(keras, ours, strict=True)]
        d, r = max((f[0] for f in figs), default=0.0), max((f[1] for f in figs), default=0.0)
        self.worst = max(self.worst, r)
        self.out(f"{name:44s} {d:20.3e} {r:13.3e}")


def _chunks(model: Any, xs: list[torch.Tensor], T: int) -> tuple[str, list[torch.Tensor]]:
    """The model's outputs on two chunks of the inputs, the state handed on: outputs that
    keep the time axis joined along it, the others the second chunk's."""
    k = T // 2
    first, second = [x[:, :k] for x in xs], [x[:, k:] for x in xs]
    y1, state = model(*first, state=None, return_state=True)
    y2 = model(*second, state=state)
    timed = getattr(model, "timed_outputs", None) or [a.ndim >= 3 for a in _flat(y1)]
    joined = [
        torch.cat([a, b], dim=1) if t else b
        for a, b, t in zip(_flat(y1), _flat(y2), timed, strict=True)
    ]
    return f"two chunks ({k} + {T - k} steps), state carried", joined


def _fixed_length(model: Any) -> int | None:
    """The time length every input fixes (then two shorter chunks cannot be fed), or None."""
    for spec in input_specs(model):
        if len(spec.shape) >= 2 and spec.shape[1] is not None:
            return spec.shape[1]
    return None


def _torch_side(
    model: Any, xs: list[np.ndarray]
) -> tuple[dict[str, list[torch.Tensor]], list[torch.Tensor], tuple[str, list] | None]:
    """(each layer's outputs by name, the model outputs, the two chunks or None)."""
    txs = [torch.from_numpy(x) for x in xs]
    T = xs[0].shape[1] if xs[0].ndim >= 2 else 0
    with torch.no_grad():  # thread-local: entered in the thread that runs the model
        ours = {n: _flat(t) for n, t in model.layer_outputs(*txs)}
        ys = _flat(model(*txs))
        chunked = getattr(model, "streamable", False) and T >= 2 and _fixed_length(model) is None
        chunks = _chunks(model, txs, T) if chunked else None
    return ours, ys, chunks


def _no_chunks(model: Any) -> str:
    """Why the check feeds no two chunks."""
    if not getattr(model, "streamable", False):
        why = getattr(model, "why_not_streamable", lambda: None)()
        return f"not streamable: {why}" if why else "not streamable"
    n = _fixed_length(model)
    return f"the inputs fix the length to {n} steps" if n else "one step"


def compare(model: Any, keras_path: Path, keras_arch: Path | None, out=print) -> float:
    """Print both figures for every output compared; return the largest relative figure
    (above ``TOLERANCE``: the check fails). Torch runs in a thread while the Keras process
    starts (its import alone is seconds): the same numbers, the torch side's time hidden."""
    xs = make_inputs(input_specs(model))
    with ThreadPoolExecutor(max_workers=1) as pool:
        mine = pool.submit(_torch_side, model, xs)
        keras = run_keras(keras_path, keras_arch, xs)
        ours, ys, chunks = mine.result()
    table = Table(out)
    layers = [(n, k) for n, k in keras if not n.startswith("model output ")]
    outputs = [k[0] for n, k in keras if n.startswith("model output ")]
    for name, k in layers:
        if name in ours:
            table.row(name, k, ours[name])
    if chunks is not None:
        table.row(chunks[0], outputs, chunks[1])
    else:
        out(f"two chunks with the state: not applicable ({_no_chunks(model)})")
    if len(ys) != len(outputs):
        table.worst = float("inf")
        out(f"Keras gives {len(outputs)} model outputs, torch {len(ys)}")
    for i, (k, t) in enumerate(zip(outputs, ys, strict=False)):
        table.row(f"model output {i}", [k], [t])
    verdict = "within" if table.worst <= TOLERANCE else "ABOVE"
    out(f"largest relative difference {table.worst:.3e}: {verdict} the tolerance {TOLERANCE:g}")
    return table.worst
