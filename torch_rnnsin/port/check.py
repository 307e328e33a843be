"""``port --check``: Keras (in its own process) against torch on the same random inputs.

Keras runs ``keras_ref.port_check`` on the Keras file; torch runs the ported model. Every
layer's output is compared, then, for streamable models, the output of two chunks with the
state handed on against Keras's one call.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-5
BATCH, LENGTH = 3, 7


def keras_available() -> None:
    """Refuse up front (before anything is written) when Keras cannot be run."""
    for name in ("keras", "keras_ref"):
        if importlib.util.find_spec(name) is None:
            raise ValueError(
                f"--check runs Keras, but {name!r} is not installed (install the 'keras' extra)"
            )


def run_keras(path: Path, arch: Path | None, x: np.ndarray) -> list[tuple[str, list]]:
    """(layer, outputs) for every Keras layer, from ``python -m keras_ref.port_check``."""
    with tempfile.TemporaryDirectory() as d:
        np.savez(Path(d) / "x.npz", x=x)
        cmd = [sys.executable, "-m", "keras_ref.port_check", str(path)]
        cmd += ["--inputs", str(Path(d) / "x.npz"), "--out", str(Path(d) / "y.npz")]
        if arch is not None:
            cmd += ["--arch", str(arch)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
            raise ValueError(lines[-1] if lines else f"Keras exited with {r.returncode}")
        with np.load(Path(d) / "y.npz", allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            return [
                (n, [z[k] for k in sorted(z.files) if k.startswith(f"out_{i}_")])
                for i, n in enumerate(names)
            ]


def compare(model, keras_path: Path, keras_arch: Path | None, out=print) -> float:
    """Print the largest difference per layer output (and for chunked state); return the
    largest of all."""
    _, T, F = model.inputs[0].shape
    T = T or LENGTH
    x = np.random.default_rng(0).normal(size=(BATCH, T, F))
    x = x.astype(np.float32)
    keras = run_keras(keras_path, keras_arch, x)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        ours = model.layer_outputs(xt)
    if len(ours) != len(keras):
        raise ValueError(f"Keras has {len(keras)} layers, the torch model {len(ours)}")
    worst = 0.0
    out(f"{'layer output':40s} {'max |Keras - torch|':>20s}")
    for (name, k), (_, t) in zip(keras, ours, strict=True):
        t = list(t) if isinstance(t, list | tuple) else [t]
        if len(k) != len(t) or any(a.shape != tuple(b.shape) for a, b in zip(k, t, strict=True)):
            shapes = ([a.shape for a in k], [tuple(b.shape) for b in t])
            raise ValueError(f"{name}: Keras gives shapes {shapes[0]}, torch {shapes[1]}")
        d = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(k, t, strict=True))
        worst = max(worst, d)
        out(f"{name:40s} {d:20.3e}")
    if model.streamable and T >= 2:
        k = T // 2
        with torch.no_grad():
            y1, state = model(xt[:, :k], return_state=True)
            y2 = model(xt[:, k:], state=state)
        y = torch.cat([y1, y2], dim=1) if y2.ndim == 3 else y2
        d = float(np.abs(keras[-1][1][0] - y.numpy()).max())
        worst = max(worst, d)
        out(f"{f'two chunks ({k} + {T - k} steps), state carried':40s} {d:20.3e}")
    else:
        out("two chunks with the state: not applicable (Bidirectional or go_backwards)")
    verdict = "within" if worst <= TOLERANCE else "ABOVE"
    out(f"largest difference {worst:.3e}: {verdict} the tolerance {TOLERANCE:g}")
    return worst
