"""The port judged by Keras itself: real Keras 3 and Keras 2 models of every supported
layer kind and option, in every file layout, loaded into torch, must predict what
Keras predicted (≤ 1e-5); saved back, Keras must load them and predict the same; the
state handed on between chunks must equal one call and Keras's own stateful model;
everything else is refused, by the API and by the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from keras_factory import LAYOUTS, REFUSALS, SPECS

pytestmark = pytest.mark.keras
TOL = 1e-5
NAMES = [spec["name"] for spec in SPECS]


def assert_close(got, want, what: str, tol: float = TOL) -> None:
    """Outputs (one array or a list of them) agree within tol."""
    got = [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
    want = [np.asarray(w) for w in (want if isinstance(want, (list, tuple)) else [want])]
    assert len(got) == len(want), f"{what}: {len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape, f"{what} output {i}: shape {g.shape}, expected {w.shape}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if g.size else 0.0
        assert err <= tol, f"{what} output {i}: max abs difference {err:.2e} > {tol}"


# ----------------------------------------------------------------------------- the factory


def test_factory_built_every_case_and_keras2_counters(keras_models):
    """The judge is sound: Keras 2 and Keras 3 agree on every case (same weights), the
    Keras 2 files carry counter names, and the weights are non-trivial."""
    cases = keras_models.cases
    assert sorted(cases) == sorted(NAMES)
    for c in cases.values():
        assert_close(c.y_k2, c.y, f"{c.name}: Keras 2 vs Keras 3")
        assert all(np.all(w != 0) for w in c.weights), c.name
        for layout in LAYOUTS:
            path, arch = c.source(layout)
            assert path.is_file() and (arch is None or arch.is_file()), (c.name, layout)
    counted = [
        n for c in cases.values() for n in c.k2_layer_names if n.rsplit("_", 1)[-1].isdigit()
    ]
    assert {"dense_1", "lstm_1"} <= set(counted)
    for name in REFUSALS:
        assert keras_models.refusal(name).is_file(), name
