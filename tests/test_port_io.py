"""port/io's contract against Keras itself: weights as {layer path: {sub-path: arrays}} for
nested models and layers with sub-objects, in every format; our files written back load in
Keras; a weights-only file needs its architecture unless we stamped it."""

from __future__ import annotations

from pathlib import Path

import kcache
import numpy as np
import pytest

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.io import NeedsArch, read_keras, write_keras

BUILD = """
import sys, numpy as np
from pathlib import Path
api, out = sys.argv[1], Path(sys.argv[2])
if api == "k3":
    import keras
else:
    import tf_keras as keras
L = keras.layers
inner = keras.Sequential(
    [keras.Input((5, 4)), L.LSTM(3, return_sequences=True), L.Dense(2)], name="inner")
inp = keras.Input((5, 4))
h = inner(inp)
h = L.Bidirectional(L.GRU(2, return_sequences=True))(h)
h = L.TimeDistributed(L.Dense(2))(h)
h = L.MultiHeadAttention(2, 3)(h, h)
h = L.BatchNormalization()(h)
m = keras.Model(inp, L.Dense(1)(h))
rng = np.random.default_rng(5)
m.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype("float32") for w in m.get_weights()])
x = rng.uniform(-1, 1, (3, 5, 4)).astype("float32")
np.save(out / f"{api}_x.npy", x)
np.save(out / f"{api}_y.npy", m.predict(x, verbose=0))
if api == "k3":
    m.save(out / "k3.keras"); m.save_weights(out / "k3.weights.h5"); m.save(out / "k3.h5")
    (out / "k3.json").write_text(m.to_json())
else:
    m.save(out / "k2.h5")
want = {}
for layer in m.layers:
    subs = layer.layers if hasattr(layer, "layers") else [layer]
    for s in subs:
        name = layer.name + "/" + s.name if s is not layer else s.name
        for i, w in enumerate(s.get_weights()):
            want[f"{name}|{i}"] = w
np.savez(out / f"{api}_want.npz", **want)
"""

CHECK = """
import sys, numpy as np, keras
from pathlib import Path
out = Path(sys.argv[1])
x, y = np.load(out / "k3_x.npy"), np.load(out / "k3_y.npy")
m = keras.saving.load_model(out / "back.keras")
assert np.abs(m.predict(x, verbose=0) - y).max() <= 1e-6
fresh = keras.models.clone_model(m)
fresh.load_weights(out / "back.weights.h5")
assert np.abs(fresh.predict(x, verbose=0) - y).max() <= 1e-6
"""


def run(code: str, *args: str, api: str, tmp: Path) -> None:
    """``python -c CODE ARGS...`` in the session's warm Keras worker (tests/kcache.py)."""
    script = tmp / f"script_{api}.py"
    script.write_text(code)
    err = kcache.run_script(script, list(args), api).wait()
    assert err is None, err


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("io")
    for api in ("k3", "k2"):
        run(BUILD, api, str(out), api=api, tmp=out)
    return out


def want(files: Path, api: str) -> dict[str, list[np.ndarray]]:
    out: dict[str, list] = {}
    with np.load(files / f"{api}_want.npz") as z:
        for key in sorted(z.files, key=lambda k: (k.split("|")[0], int(k.split("|")[1]))):
            out.setdefault(key.split("|")[0], []).append(z[key])
    return out


def flat(subs: dict, order: tuple[str, ...]) -> list[np.ndarray]:
    assert set(subs) <= set(order), subs.keys()
    return [a for s in order if s in subs for a in subs[s]]


SUBS = {  # Keras 3: where each layer's arrays live, in get_weights() order
    "inner/lstm": ("cell",),
    "inner/dense": ("",),
    "bidirectional": ("forward_layer/cell", "backward_layer/cell"),
    "time_distributed": ("layer",),
    "multi_head_attention": ("query_dense", "key_dense", "value_dense", "output_dense"),
    "batch_normalization": ("",),
    "dense_1": ("",),
}


def check_same(got: dict, expected: dict, subs: dict[str, tuple[str, ...]] | None) -> None:
    expected = {k: v for k, v in expected.items() if v}
    assert sorted(got) == sorted(expected)
    for path, arrays in expected.items():
        order = subs[path] if subs else ("",)
        got_arrays = flat(got[path], order)
        assert len(got_arrays) == len(arrays), path
        for a, b in zip(got_arrays, arrays, strict=True):
            assert a.dtype == b.dtype, path
            assert np.array_equal(a, b), path


@pytest.mark.keras
@pytest.mark.parametrize("layout", ["keras", "weights+json", "legacy_h5"])
def test_nested_and_sub_objects_keras3(files, layout):
    """A nested Sequential's layers as 'inner/lstm', 'inner/dense'; sub-paths found by
    walking the groups (MultiHeadAttention's query_dense ..., BatchNormalization's 4 vars)."""
    path, arch = {
        "keras": ("k3.keras", None),
        "weights+json": ("k3.weights.h5", files / "k3.json"),
        "legacy_h5": ("k3.h5", None),
    }[layout]
    kf = read_keras(files / path, arch)
    names = {k.replace("dense_2", "dense_1"): v for k, v in want(files, "k3").items()}
    got = {k.replace("dense_2", "dense_1"): v for k, v in kf.weights.items()}
    check_same(got, names, SUBS if layout != "legacy_h5" else None)
    if layout == "weights+json":
        assert kf.keras_version == "3"  # a bare .weights.h5 says nothing more
    else:
        assert kf.keras_version.startswith("3.")
    assert kf.dialect == ("keras3-h5" if layout == "legacy_h5" else "keras3")


@pytest.mark.keras
def test_nested_keras2_h5_split_to_inner_layers(files):
    kf = read_keras(files / "k2.h5")
    assert kf.dialect == "keras2-h5"
    assert kf.keras_version.startswith("2.")
    check_same(kf.weights, want(files, "k2"), None)


@pytest.mark.keras
def test_written_back_loads_in_keras(files):
    """read -> write_keras (.keras and .weights.h5) -> Keras 3 load_model / load_weights: the
    same predictions (nested Sequential, Bidirectional(GRU), TimeDistributed(Dense),
    MultiHeadAttention, BatchNormalization, Dense)."""
    kf = read_keras(files / "k3.keras")
    write_keras(files / "back.keras", kf.config, kf.weights)
    write_keras(files / "back.weights.h5", kf.config, kf.weights)
    run(CHECK, str(files), api="k3", tmp=files)
    again = read_keras(files / "back.weights.h5")  # the stamp holds the config
    assert again.config == kf.config
    check_same(
        again.weights,
        {k: flat(v, SUBS[k.replace("dense_2", "dense_1")]) for k, v in kf.weights.items()},
        {k: SUBS[k.replace("dense_2", "dense_1")] for k in kf.weights},
    )


@pytest.mark.keras
def test_weights_only_without_arch_refused_in_one_line(files):
    with pytest.raises(NeedsArch, match=r"k3\.weights\.h5: .*--arch / arch=") as e:
        read_keras(files / "k3.weights.h5")
    assert "\n" not in str(e.value)
    assert isinstance(e.value, Refused)


def test_stamped_weights_read_without_arch_and_checked(tmp_path):
    import h5py

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 1]}},
                {"class_name": "Dense", "config": {"name": "out", "units": 2}},
            ],
        },
    }
    weights = {"out": {"": [np.ones((1, 2), np.float32), np.zeros(2, np.float32)]}}
    write_keras(tmp_path / "w.weights.h5", config, weights)
    kf = read_keras(tmp_path / "w.weights.h5")
    assert kf.config == config
    assert np.array_equal(kf.weights["out"][""][0], weights["out"][""][0])
    with h5py.File(tmp_path / "w.weights.h5", "a") as h5:
        h5["layers/dense/vars/0"][0, 0] = 2.0  # a changed value: its checksum no longer holds
    with pytest.raises(Refused, match=r"tensor 'layers/dense/vars/0' does not match its checksum"):
        read_keras(tmp_path / "w.weights.h5")
