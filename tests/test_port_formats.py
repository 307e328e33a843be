"""port/io against files Keras itself wrote: Keras 3 (.keras, .weights.h5, legacy
.h5) in this process, Keras 2 (tf_keras .h5) in the session's Keras 2 worker; then every bad file of the
weight-file list gets one clean error.

Run as a script (``python tests/test_port_formats.py k2 OUT``) it builds the Keras 2 files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import kcache
import numpy as np
import pytest
from conftest import ROOT
from port_helpers import keras_predict

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.io import (
    MAX_BYTES,
    read_keras,
    read_npz,
    read_torch_file,
    write_keras,
    write_torch_file,
)

CASES = ("srnn", "stack", "bidi", "td", "gru_rb")


def build(K, name: str):
    """One small model; K is keras (3) or tf_keras (2)."""
    L = K.layers
    rs = {"return_sequences": True}
    if name == "srnn":
        return K.Sequential([K.Input((5, 1)), L.SimpleRNN(3), L.Dense(1)])
    if name == "stack":  # two LSTMs, two Denses: exercises the _1 counters
        layers = [L.LSTM(4, **rs), L.GRU(3, **rs), L.LSTM(2), L.Dense(3, activation="tanh")]
        return K.Sequential([K.Input((6, 2)), *layers, L.Dense(1)])
    if name == "bidi":
        return K.Sequential([K.Input((5, 2)), L.Bidirectional(L.LSTM(3)), L.Dense(1)])
    if name == "td":
        return K.Sequential([K.Input((5, 2)), L.SimpleRNN(3, **rs), L.TimeDistributed(L.Dense(2))])
    inp = K.Input((5, 2))  # gru_rb: a Functional model, with an InputLayer and a Dropout
    h = L.GRU(3, reset_after=False, **rs)(inp)
    h = L.GRU(2, reset_after=True)(L.Dropout(0.2)(h))
    return K.Model(inp, L.Dense(1)(h))


def randomize(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.uniform(-0.8, 0.8, w.shape).astype(np.float32) for w in model.get_weights()]
    )


def per_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}


def build_k2(out: Path) -> None:
    """Keras 2 files: model.save (.h5) and save_weights (.h5), plus each layer's arrays."""
    import tf_keras

    arrays, names = {}, {}
    for i, name in enumerate(CASES):
        model = build(tf_keras, name)
        randomize(model, 100 + i)
        model.save(out / f"{name}.k2.h5")
        model.save_weights(out / f"{name}.k2w.h5")
        model.save(out / f"{name}.k2.keras")  # Keras 2.13+ also writes the new format
        names[name] = {n: len(w) for n, w in per_layer(model).items()}
        for n, ws in per_layer(model).items():
            arrays.update({f"{name}|{n}|{j}": w for j, w in enumerate(ws)})
    np.savez(out / "k2_weights.npz", **arrays)
    (out / "k2_names.json").write_text(json.dumps(names))


@pytest.fixture(scope="session")
def k2_files(tmp_path_factory):
    """Keras 2 files, written by tf_keras in the session's Keras 2 worker (tests/kcache.py;
    started first: it runs while Keras 3 builds its files here). None without tf_keras."""
    out = tmp_path_factory.mktemp("k2")
    if importlib.util.find_spec("tf_keras") is None:
        return None, out
    return kcache.run_script(Path(__file__), ["k2", str(out)], "k2"), out


@pytest.fixture(scope="session")
def k2(k2_files):
    job, out = k2_files
    kcache.needs_keras("tf_keras")
    err = job.wait()
    if err is not None:
        pytest.fail(f"building the Keras 2 files failed:\n{err[-2000:]}")
    names = json.loads((out / "k2_names.json").read_text())
    with np.load(out / "k2_weights.npz") as z:
        weights = {
            case: {n: [z[f"{case}|{n}|{j}"] for j in range(k)] for n, k in layers.items()}
            for case, layers in names.items()
        }
    return out, weights


@pytest.fixture(scope="session")
def k3(keras3, k2_files, tmp_path_factory):
    """Keras 3 models with random weights, saved in every Keras 3 layout."""
    out = tmp_path_factory.mktemp("k3")
    models = {}
    for i, name in enumerate(CASES):
        model = build(keras3, name)
        randomize(model, i)
        model.save(out / f"{name}.keras")
        model.save_weights(out / f"{name}.weights.h5")
        model.save(out / f"{name}.h5")
        (out / f"{name}.json").write_text(model.to_json())
        models[name] = model
    twin = build(keras3, "stack")  # same architecture, other (auto) layer names
    twin.save(out / "stack_twin.keras")
    return out, models, twin


SUB_ORDER = ("", "cell", "forward_layer/cell", "backward_layer/cell", "layer")


def flat(weights: dict) -> dict[str, list[np.ndarray]]:
    """{layer: {sub-path: arrays}} as {layer: get_weights()} (Bidirectional: forward first)."""
    rank = {s: i for i, s in enumerate(SUB_ORDER)}
    return {
        k: [a for s in sorted(subs, key=lambda s: rank.get(s, 9)) for a in subs[s]]
        for k, subs in weights.items()
    }


def assert_same_weights(got: dict, want: dict) -> None:
    got = flat(got) if got and isinstance(next(iter(got.values())), dict) else got
    want = flat(want) if want and isinstance(next(iter(want.values())), dict) else want
    assert list(got) == list(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name], strict=True):
            assert a.dtype == b.dtype, name
            assert np.array_equal(a, b), name


def classes(config: dict) -> list[str]:
    return [layer["class_name"] for layer in config["config"]["layers"]]


def model_classes(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


LAYOUTS = {
    "keras": ("{}.keras", None, "keras3"),
    "weights+keras": ("{}.weights.h5", "{}.keras", "keras3"),
    "weights+json": ("{}.weights.h5", "{}.json", "keras3"),
    "legacy_h5": ("{}.h5", None, "keras3-h5"),
}


@pytest.mark.keras
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", CASES)
def test_read_keras3_equals_get_weights(k3, name, layout):
    out, models, _ = k3
    file, arch, dialect = LAYOUTS[layout]
    kf = read_keras(out / file.format(name), arch and out / arch.format(name))
    assert kf.dialect == dialect
    assert_same_weights(kf.weights, per_layer(models[name]))
    assert [c for c in classes(kf.config) if c != "InputLayer"] == [
        c for c in model_classes(models[name]) if c != "InputLayer"
    ]


@pytest.mark.keras
def test_weights_h5_with_the_architecture_of_another_instance(k3):
    """The weights follow the architecture's layer order, whatever its layer names."""
    out, models, twin = k3
    kf = read_keras(out / "stack.weights.h5", out / "stack_twin.keras")
    assert list(kf.weights) == list(per_layer(twin))
    assert list(kf.weights) != list(per_layer(models["stack"]))  # the names really differ
    for got, want in zip(
        flat(kf.weights).values(), per_layer(models["stack"]).values(), strict=True
    ):
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.keras
def test_weights_h5_with_a_mismatched_architecture_is_refused(k3):
    out, _, _ = k3
    with pytest.raises(ValueError, match=r"stack\.weights\.h5: .*(architecture|layers/)"):
        read_keras(out / "stack.weights.h5", out / "srnn.keras")


@pytest.mark.keras
def test_weights_h5_needs_arch(k3):
    out, _, _ = k3
    with pytest.raises(ValueError, match="--arch"):
        read_keras(out / "srnn.weights.h5")


K2_LAYOUTS = {
    "model_save": ("{}.k2.h5", None, "keras2-h5"),
    "save_weights": ("{}.k2w.h5", "{}.k2.h5", "keras2-h5"),
    "keras": ("{}.k2.keras", None, "keras2"),
}


@pytest.mark.keras
@pytest.mark.parametrize("layout", K2_LAYOUTS)
@pytest.mark.parametrize("name", CASES)
def test_read_keras2_equals_get_weights(k2, name, layout):
    out, weights = k2
    file, arch, dialect = K2_LAYOUTS[layout]
    kf = read_keras(out / file.format(name), arch and out / arch.format(name))
    assert kf.dialect == dialect
    assert_same_weights(kf.weights, weights[name])


@pytest.mark.keras
def test_keras2_names_carry_global_counters(k2):
    """Several models in one tf_keras process: later ones get dense_3, lstm_2, ... and the
    cells lstm_cell_2: the reader found them through the file's attributes."""
    import h5py

    out, weights = k2
    with h5py.File(out / "td.k2.h5") as h5:
        g = h5["model_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs["layer_names"]]
    assert any(n.rsplit("_", 1)[-1].isdigit() for n in names), names
    assert set(weights["td"]) <= set(names)


@pytest.mark.keras
def test_keras2_weight_names_followed_not_guessed(k2, tmp_path):
    """Cells named with another process's counters (lstm_cell_2): found through the
    weight_names attribute; a weight_names entry with no dataset is refused, naming it."""
    import shutil

    import h5py

    out, weights = k2
    path = shutil.copy(out / "stack.k2.h5", tmp_path / "m.h5")
    with h5py.File(path, "a") as h5:
        g = h5["model_weights"]
        layer = next(n for n in weights["stack"] if n.startswith("lstm"))
        old = [n.decode() if isinstance(n, bytes) else n for n in g[layer].attrs["weight_names"]]
        cell = old[0].split("/")[1]  # lstm/lstm_cell/kernel:0 -> lstm_cell
        g[layer].move(f"{layer}/{cell}", f"{layer}/{cell}_2")
        g[layer].attrs["weight_names"] = [n.replace(f"/{cell}/", f"/{cell}_2/") for n in old]
    assert_same_weights(read_keras(path).weights, weights["stack"])
    with h5py.File(path, "a") as h5:
        h5["model_weights"][layer].attrs["weight_names"] = old  # the guessed names: gone
    refused(read_keras, path, match=f"no '{cell}'")


@pytest.mark.keras
@pytest.mark.parametrize("name", CASES)
def test_write_keras_loads_in_keras(k3, keras3, tmp_path, name):
    """read .keras -> write .keras / .weights.h5 -> Keras loads both: same arrays, same
    predictions, and the same HDF5 dataset paths as Keras's own file."""
    import h5py

    out, models, _ = k3
    model = models[name]
    kf = read_keras(out / f"{name}.keras")
    write_keras(tmp_path / "back.keras", kf.config, kf.weights)
    write_keras(tmp_path / "back.weights.h5", kf.config, kf.weights)
    x = np.random.default_rng(7).uniform(-1, 1, (3, *model.input_shape[1:])).astype(np.float32)
    want = keras_predict(model, x)

    loaded = keras3.saving.load_model(tmp_path / "back.keras")
    assert_same_weights(per_layer(loaded), per_layer(model))
    np.testing.assert_allclose(keras_predict(loaded, x), want, rtol=0, atol=1e-6)

    fresh = keras3.models.clone_model(model)  # fresh random weights
    fresh.load_weights(tmp_path / "back.weights.h5")
    np.testing.assert_allclose(keras_predict(fresh, x), want, rtol=0, atol=1e-6)

    def datasets(path):
        with h5py.File(path) as h5:
            found = []
            h5.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
            return sorted(n for n in found if not n.startswith("optimizer"))

    assert datasets(tmp_path / "back.weights.h5") == datasets(out / f"{name}.weights.h5")
    again = read_keras(tmp_path / "back.keras")
    assert again.config == kf.config
    assert_same_weights(again.weights, kf.weights)


# --- torch files and .npz: exact round trips ---------------------------------------------


def a_state_dict() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "rnns.0.weight_ih_l0": rng.standard_normal((12, 2)).astype(np.float32),
        "rnns.0.bias_hh_l0": rng.standard_normal(12).astype(np.float32),
        "head.weight": rng.standard_normal((1, 3)),  # float64 stays float64
        "steps": np.arange(4, dtype=np.int64),
    }


ARCH = {"layers": [{"kind": "LSTM", "units": 3, "return_sequences": False}], "features": 2}


@pytest.mark.parametrize("ext", [".safetensors", ".pt"])
def test_torch_file_round_trip_exact(tmp_path, ext):
    import torch

    sd = a_state_dict()
    path = tmp_path / f"m{ext}"
    write_torch_file(path, {k: torch.from_numpy(v) for k, v in sd.items()}, ARCH)
    arrays, arch = read_torch_file(path)
    assert arch == ARCH
    assert set(arrays) == set(sd)  # .safetensors lists its tensors sorted by name
    for k, v in sd.items():
        assert arrays[k].dtype == v.dtype, k
        assert np.array_equal(arrays[k], v), k
    if ext == ".pt":
        obj = torch.load(path, weights_only=True)
        assert set(obj) == {"state_dict", "arch", "sha256", "arch_sha256"}
        assert json.loads(obj["arch"]) == ARCH


def test_npz_round_trip_in_order(tmp_path):
    arrays = [np.full((i + 1, 2), i, dtype=np.float32) for i in range(12)]  # arr_10 after arr_9
    np.savez(tmp_path / "w.npz", *arrays)
    got = read_npz(tmp_path / "w.npz")
    assert len(got) == 12
    assert all(np.array_equal(a, b) for a, b in zip(got, arrays, strict=True))
    np.savez_compressed(tmp_path / "c.npz", *arrays)
    assert all(
        np.array_equal(a, b) for a, b in zip(read_npz(tmp_path / "c.npz"), arrays, strict=True)
    )


# --- bad files: one clean ValueError each ------------------------------------------------

CONFIG = {
    "class_name": "Sequential",
    "config": {
        "name": "s",
        "layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 1]}},
            {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 2}},
            {"class_name": "Dense", "config": {"name": "out", "units": 1}},
        ],
    },
}
WEIGHTS = {
    "rnn": {
        "cell": [np.ones((1, 2), np.float32), np.eye(2, dtype=np.float32), np.zeros(2, np.float32)]
    },
    "out": {"": [np.ones((2, 1), np.float32), np.zeros(1, np.float32)]},
}


def refused(fn, *args, match: str, names: Path | None = None) -> str:
    """The call raises one ValueError line, naming the file (``names``, else the first)."""
    with pytest.raises(ValueError, match=match) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(names or args[0]) in msg
    return msg


def test_written_files_read_back_without_keras(tmp_path):
    write_keras(tmp_path / "m.keras", CONFIG, WEIGHTS)
    write_keras(tmp_path / "m.weights.h5", CONFIG, WEIGHTS)
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    for kf in (
        read_keras(tmp_path / "m.keras"),
        read_keras(tmp_path / "m.weights.h5", tmp_path / "c.json"),
    ):
        assert kf.config == CONFIG
        assert kf.dialect == "keras3"
        assert_same_weights(kf.weights, WEIGHTS)


def test_arch_as_a_dict_and_arch_where_none_is_needed(tmp_path):
    write_keras(tmp_path / "m.weights.h5", CONFIG, WEIGHTS)
    assert_same_weights(read_keras(tmp_path / "m.weights.h5", CONFIG).weights, WEIGHTS)
    with pytest.raises(ValueError, match=r"the architecture: .*JSON list"):
        read_keras(tmp_path / "m.weights.h5", [CONFIG])
    write_keras(tmp_path / "m.keras", CONFIG, WEIGHTS)
    refused(read_keras, tmp_path / "m.keras", CONFIG, match="--arch is not needed")


def test_empty_npz(tmp_path):
    np.savez(tmp_path / "w.npz")
    refused(read_npz, tmp_path / "w.npz", match="no arrays")


def test_npy_named_npz(tmp_path):
    np.save(tmp_path / "w.npy", np.ones(3))
    os.rename(tmp_path / "w.npy", tmp_path / "w.npz")
    refused(read_npz, tmp_path / "w.npz", match=r"single \.npy")


def test_npz_with_named_arrays(tmp_path):
    np.savez(tmp_path / "w.npz", kernel=np.ones(3))
    refused(read_npz, tmp_path / "w.npz", match="arr_0")


def patch_zip(path: Path, central_offset: int, local_offset: int, fmt: str, value: int) -> None:
    """Overwrite one field of every member's central and local header."""
    data = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x01\x02", central_offset), (b"PK\x03\x04", local_offset)):
        i = data.find(sig)
        while i >= 0:
            struct.pack_into(fmt, data, i + off, value)
            i = data.find(sig, i + 4)
    path.write_bytes(bytes(data))


def test_encrypted_zip_member(tmp_path):
    np.savez(tmp_path / "w.npz", np.ones(3))
    patch_zip(tmp_path / "w.npz", 8, 6, "<H", 0x1)  # general purpose flag: encrypted
    refused(read_npz, tmp_path / "w.npz", match="encrypted")
    write_keras(tmp_path / "m.keras", CONFIG, WEIGHTS)
    patch_zip(tmp_path / "m.keras", 8, 6, "<H", 0x1)
    refused(read_keras, tmp_path / "m.keras", match="encrypted")


def test_unsupported_zip_compression(tmp_path):
    np.savez(tmp_path / "w.npz", np.ones(3))
    patch_zip(tmp_path / "w.npz", 10, 8, "<H", 99)  # 99: AES, which zipfile cannot read
    refused(read_npz, tmp_path / "w.npz", match="compression method 99")


def test_zip_bomb_refused_before_reading(tmp_path):
    """A member declaring 3.75 GB (a real bomb declares what it expands to)."""
    np.savez_compressed(tmp_path / "w.npz", np.zeros(1000))
    data = bytearray((tmp_path / "w.npz").read_bytes())
    i = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, i + 24, 0xF000_0000)  # uncompressed size, central directory
    (tmp_path / "w.npz").write_bytes(bytes(data))
    refused(read_npz, tmp_path / "w.npz", match=f"more than {MAX_BYTES} bytes")


def test_npy_header_claiming_gigabytes(tmp_path):
    """An honest small member whose .npy header claims 8 TB: refused, nothing allocated."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)}
    )
    with zipfile.ZipFile(tmp_path / "w.npz", "w") as z:
        z.writestr("arr_0.npy", buf.getvalue() + bytes(64))
    refused(read_npz, tmp_path / "w.npz", match="exceed")


@pytest.mark.parametrize(
    "array",
    [np.ones(3, np.complex64), np.array(["a", "b"]), np.ones(2, bool)],
    ids=["complex", "string", "bool"],
)
def test_npz_non_real_arrays(tmp_path, array):
    np.savez(tmp_path / "w.npz", array)
    refused(read_npz, tmp_path / "w.npz", match="not a real number type")


def test_npz_object_array_never_unpickled(tmp_path):
    np.savez(tmp_path / "w.npz", np.array([{"a": 1}, None], dtype=object))
    refused(read_npz, tmp_path / "w.npz", match="not a real number type")


def keras_zip(path: Path, config: object, weights: Path | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        if weights is not None:
            z.write(weights, "model.weights.h5")
    return path


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ([1, 2], "JSON list, not an object"),
        ({"class_name": "Sequential"}, "needs 'class_name'"),
        ({"class_name": 3, "config": {}}, "needs 'class_name'"),
        ({"class_name": "Sequential", "config": {"layers": "lstm"}}, "no 'layers' list"),
        ({"class_name": "Conv1D", "config": {"layers": []}}, "model class 'Conv1D'"),
        (
            {
                "class_name": "Sequential",
                "config": {"layers": [{"class_name": "LSTM", "config": {"name": 5}}]},
            },
            "layer 0 of the config",
        ),
    ],
    ids=["list", "no-config", "class-int", "layers-str", "not-a-model", "name-int"],
)
def test_bad_config_json(tmp_path, config, match):
    write_keras(tmp_path / "good.weights.h5", CONFIG, WEIGHTS)
    path = keras_zip(tmp_path / "m.keras", config, tmp_path / "good.weights.h5")
    refused(read_keras, path, match=match)
    (tmp_path / "c.json").write_text(json.dumps(config))
    arch = tmp_path / "c.json"
    refused(read_keras, tmp_path / "good.weights.h5", arch, match=match, names=arch)


def test_config_json_not_json(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("config.json", "{not json")
    refused(read_keras, tmp_path / "m.keras", match="not valid JSON")


def weights_h5(path: Path, edit) -> Path:
    """A Keras-like .weights.h5 (ours, its stamp removed), then edited."""
    import h5py

    write_keras(path, CONFIG, WEIGHTS)
    with h5py.File(path, "a") as h5:
        del h5.attrs["torch_rnnsin"]
        edit(h5)
    return path


def test_weights_h5_layers_is_a_dataset(tmp_path):
    import h5py

    with h5py.File(tmp_path / "w.weights.h5", "w") as h5:
        h5["layers"] = np.ones(3)
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    refused(
        read_keras, tmp_path / "w.weights.h5", tmp_path / "c.json", match="'layers' is a dataset"
    )


@pytest.mark.parametrize("where", ["layers/extra", "layers/dense/vars/0", "layers/simple_rnn/cell"])
@pytest.mark.parametrize("kind", ["external", "soft"])
def test_weights_h5_links_never_followed(tmp_path, where, kind):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["x/vars/0"] = np.ones((2, 1), np.float32)

    def edit(h5):
        if where in h5:
            del h5[where]
        target = "/layers/simple_rnn/vars"
        h5[where] = (
            h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
            if kind == "external"
            else h5py.SoftLink(target)
        )

    path = weights_h5(tmp_path / "w.weights.h5", edit)
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    refused(read_keras, path, tmp_path / "c.json", match="links are not followed")


def test_legacy_h5_model_weights_as_external_link(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as other:
        other["mw/rnn"] = np.ones(2)
    with h5py.File(tmp_path / "m.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        h5["model_weights"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/mw")
    refused(read_keras, tmp_path / "m.h5", match="links are not followed")


def test_damaged_global_heap_refused_not_hung(tmp_path):
    """A global heap (the home of variable-length strings such as layer_names) stretched
    over the zeros that follow it: HDF5 itself would loop forever; refused up front. Run
    in a subprocess so that a regression fails on the timeout instead of hanging."""
    import h5py

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        h5.create_group("model_weights").attrs["layer_names"] = ["rnn", "out"]
        h5.create_dataset("pad", data=np.zeros(1 << 14))  # zeros after the heap
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL\x01\x00\x00\x00")
    assert at >= 0
    struct.pack_into("<Q", data, at + 8, len(data) - at)
    path.write_bytes(bytes(data))
    code = (
        "import sys\nfrom torch_rnnsin.port.io import read_keras\n"
        "try:\n    read_keras(sys.argv[1])\nexcept ValueError as e:\n    print(e)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.stdout.strip() == f"{path}: a damaged HDF5 global heap at byte {at}", r.stderr


def test_damaged_vlen_descriptor_refused_quickly(tmp_path):
    """A string descriptor claiming 3.4 GB (found by fuzzing): HDF5 would allocate it; the
    isolated reader's memory limit turns that into a prompt, clean refusal."""
    import h5py

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        h5.create_group("model_weights").attrs["layer_names"] = ["rnn", "out"]
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL\x01\x00\x00\x00")
    # layer_names' descriptors: (length u32, heap address u64, index u32); "out" is 3 long
    at = data.find(struct.pack("<IQ", 3, heap))
    assert at >= 0
    struct.pack_into("<I", data, at, 0xC7E7_034C)
    path.write_bytes(bytes(data))
    refused(read_keras, path, match=r"(?i)memory|alloc")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="isolation needs fork")
def test_damaged_string_type_crashes_hdf5_not_us(tmp_path):
    """A string attribute's type byte damaged (found by fuzzing): HDF5 segfaults reading it;
    the isolated reader's crash is a clean refusal. In a subprocess, in case it regresses."""
    import h5py

    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        h5.create_group("model_weights").attrs["layer_names"] = ["rnn", "out"]
    data = bytearray(path.read_bytes())
    name = data.find(b"layer_names\x00")
    at = data.find(b"\x19\x01", name)  # its type: variable-length (9), version 1; string
    assert name >= 0
    assert 0 < at - name < 24
    data[at + 1] = 0x53
    path.write_bytes(bytes(data))
    code = (
        "import sys\nfrom torch_rnnsin.port.io import read_keras\n"
        "try:\n    read_keras(sys.argv[1])\nexcept ValueError as e:\n    print(e)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-500:]
    assert r.stdout.startswith(f"{path}: HDF5 failed reading the file ("), r.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="isolation needs fork")
def test_isolated_reader_limits_time_memory_and_crashes():
    from torch_rnnsin.port.io import isolated

    meta, arrays = isolated(some_arrays, 3)
    assert meta == {"n": 3}
    for a, b in zip(arrays, some_arrays(3)[1], strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="too long"):
        isolated(sleeps, timeout=0.5)
    with pytest.raises(ValueError, match="MemoryError"):
        isolated(allocates)
    with pytest.raises(ValueError, match="signal 9"):
        isolated(killed)
    with pytest.raises(ValueError, match=r"^bad$"):
        isolated(raise_value_error)
    with pytest.raises(ValueError, match="not a real number type"):
        isolated(some_arrays, 1, "c8")  # what comes back is checked like a file


def some_arrays(n: int, dtype: str = "f4"):
    rng = np.random.default_rng(n)
    arrays = [rng.standard_normal((i + 1, 2)).astype(dtype) for i in range(n)]
    return {"n": n}, [*arrays, np.arange(5, dtype=">i8"), np.zeros((0, 3))]


def sleeps():
    import time

    time.sleep(30)


def allocates():
    return {}, [np.ones(8 << 30, np.uint8)]


def raise_value_error():
    raise ValueError("bad")


def killed():
    os.kill(os.getpid(), signal.SIGKILL)


def test_weights_h5_non_numeric_vars_key(tmp_path):
    def edit(h5):
        h5["layers/dense/vars/kernel"] = h5["layers/dense/vars/0"][()]
        del h5["layers/dense/vars/0"]

    path = weights_h5(tmp_path / "w.weights.h5", edit)
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    refused(read_keras, path, tmp_path / "c.json", match="not all numbers")


def test_weights_h5_huge_dataset_refused_before_reading(tmp_path):
    """A chunked dataset of 2**31 floats takes a few bytes on disk, 8 GB once read."""

    def edit(h5):
        del h5["layers/dense/vars/0"]
        h5.create_dataset("layers/dense/vars/0", shape=(1 << 31,), dtype="f4", chunks=(1 << 16,))

    path = weights_h5(tmp_path / "w.weights.h5", edit)
    assert path.stat().st_size < 1 << 20
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    refused(read_keras, path, tmp_path / "c.json", match="exceed")


@pytest.mark.parametrize("dtype", ["c8", "S4"])
def test_weights_h5_non_real_dataset(tmp_path, dtype):
    def edit(h5):
        del h5["layers/dense/vars/1"]
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(1, dtype=dtype))

    path = weights_h5(tmp_path / "w.weights.h5", edit)
    (tmp_path / "c.json").write_text(json.dumps(CONFIG))
    refused(read_keras, path, tmp_path / "c.json", match="not a real number type")


@pytest.mark.parametrize("name", ["w.npz", "m.keras", "m.h5", "m.safetensors", "m.pt"])
def test_directory_named_like_a_file(tmp_path, name):
    (tmp_path / name).mkdir()
    reader = {"npz": read_npz, "keras": read_keras, "h5": read_keras}.get(
        name.split(".")[-1], read_torch_file
    )
    refused(reader, tmp_path / name, match="is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("name", ["w.npz", "m.keras"])
def test_fifo_named_like_a_file(tmp_path, name):
    os.mkfifo(tmp_path / name)
    reader = read_npz if name.endswith(".npz") else read_keras
    refused(reader, tmp_path / name, match="not a regular file")  # and no hang on open


@pytest.mark.parametrize("reader", [read_npz, read_keras, read_torch_file])
def test_missing_file_names_it(tmp_path, reader):
    with pytest.raises(FileNotFoundError, match="nope"):
        reader(tmp_path / "nope.x")


def test_missing_arch_file(tmp_path):
    write_keras(tmp_path / "m.weights.h5", CONFIG, WEIGHTS)
    with pytest.raises(FileNotFoundError, match=re.escape("arch.json")):
        read_keras(tmp_path / "m.weights.h5", tmp_path / "arch.json")


def test_pt_with_pickled_object_never_unpickled(tmp_path):
    import torch

    torch.save({"state_dict": {}, "arch": {}, "x": Path("/etc")}, tmp_path / "m.pt")
    refused(read_torch_file, tmp_path / "m.pt", match="not a readable torch model file")


def test_pt_without_arch_or_with_complex_tensor(tmp_path):
    import torch

    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "a.pt")
    refused(read_torch_file, tmp_path / "a.pt", match="no 'arch'")
    torch.save(
        {"state_dict": {"w": torch.ones(2, dtype=torch.complex64)}, "arch": "{}"}, tmp_path / "c.pt"
    )
    refused(read_torch_file, tmp_path / "c.pt", match="not a plain real one")


def test_safetensors_without_arch(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones(2, np.float32)}, str(tmp_path / "m.safetensors"))
    refused(read_torch_file, tmp_path / "m.safetensors", match="no 'arch'")


def test_write_refuses_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not a real number type"):
        write_torch_file(tmp_path / "m.pt", {"w": np.ones(2, np.complex64)}, {})
    with pytest.raises(ValueError, match="not JSON-able"):
        write_torch_file(tmp_path / "m.safetensors", {"w": np.ones(2)}, {"x": object()})
    with pytest.raises(ValueError, match="'nope'"):
        write_keras(tmp_path / "m.keras", CONFIG, {**WEIGHTS, "nope": {"": [np.ones(1)]}})
    with pytest.raises(ValueError, match=r"\.keras or \.weights\.h5"):
        write_keras(tmp_path / "m.h5", CONFIG, WEIGHTS)
    bad = {**WEIGHTS, "out": {"": [np.ones((2, 1), np.complex64), np.zeros(1)]}}
    with pytest.raises(ValueError, match="not a real number type"):
        write_keras(tmp_path / "m.weights.h5", CONFIG, bad)
    for sub in ("../x", "cell/vars", "/cell", "0"):
        with pytest.raises(ValueError, match="sub-path"):
            write_keras(tmp_path / "b.keras", CONFIG, {"rnn": {sub: [np.ones(1)]}})
    nan = {**WEIGHTS, "out": {"": [np.full((2, 1), np.nan, np.float32), np.zeros(1)]}}
    msg = r"m\.weights\.h5: layer 'out' array vars/0: holds NaN or inf values$"
    with pytest.raises(Refused, match=msg):
        write_keras(tmp_path / "m.weights.h5", CONFIG, nan)
    with pytest.raises(Refused, match=r"m\.pt: tensor 'w': holds NaN or inf values$"):
        write_torch_file(tmp_path / "m.pt", {"w": np.array([1.0, np.inf])}, {})
    assert not list(tmp_path.iterdir())  # nothing half-written


if __name__ == "__main__":
    if sys.argv[1] == "k2":
        build_k2(Path(sys.argv[2]))
