"""Corrupted model files give a clean error or a clean read, never anything else.

Valid files of every type the port reads (Keras 3 .keras / .weights.h5 / legacy .h5 and a
Keras 2 .h5, written by Keras itself; .npz, .safetensors, .pt) are damaged by Hypothesis:
16 random bytes at one offset, up to 16 single bytes at random offsets, or a truncation.
Each damaged file must either read (real-number arrays) or raise one ValueError line naming
it (or FileNotFoundError): no other exception, no traceback for the user.

The files this package writes (.keras and .weights.h5 from ``write_keras``, .safetensors and
.pt) carry a sha256 of every array and of the architecture: damaged, they must be refused or
read exactly as before ("parses but differs": zero allowed). Keras's own formats have no
checksum, so damage there that still parses cannot be detected (it is only read cleanly).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import kcache
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torch_rnnsin.port.io import (
    read_keras,
    read_npz,
    read_torch_file,
    write_keras,
    write_torch_file,
)

K3 = """
import sys, keras
from pathlib import Path
out, L = Path(sys.argv[1]), keras.layers
m = keras.Sequential([keras.Input((4, 2)), L.LSTM(3, return_sequences=True),
                      L.Bidirectional(L.GRU(2)), L.Dense(1)])
m.save(out / "m.keras"); m.save_weights(out / "m.weights.h5"); m.save(out / "m.h5")
(out / "m.json").write_text(m.to_json())
"""
K2 = """
import sys, tf_keras as keras
from pathlib import Path
out, L = Path(sys.argv[1]), keras.layers
m = keras.Sequential([keras.Input((4, 2)), L.LSTM(3, return_sequences=True),
                      L.Bidirectional(L.GRU(2)), L.Dense(1)])
m.save(out / "k2.h5")
"""


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, tuple[bytes, str, Path]]:
    """type -> (valid bytes, file name, workspace)."""
    out = tmp_path_factory.mktemp("valid")
    jobs = []  # the session's Keras workers (tests/kcache.py) write them, side by side
    for code, api in ((K3, "k3"), (K2, "k2")):
        script = out / f"write_{api}.py"
        script.write_text(code)
        jobs.append(kcache.run_script(script, [str(out)], api))
    for job in jobs:
        err = job.wait()
        if err is not None:
            pytest.fail(f"writing the Keras files failed:\n{err[-2000:]}")
    rng = np.random.default_rng(0)
    np.savez(
        out / "w.npz", *[rng.standard_normal(s).astype(np.float32) for s in ((1, 3), (3, 3), (3,))]
    )
    sd = {"rnn.weight_ih_l0": rng.standard_normal((12, 2)), "head.bias": np.ones(1, np.float32)}
    arch = {"layers": [{"kind": "LSTM", "units": 3}]}
    write_torch_file(out / "m.safetensors", sd, arch)
    write_torch_file(out / "m.pt", sd, arch)
    kf = read_keras(out / "m.keras")
    write_keras(out / "our.keras", kf.config, kf.weights)
    write_keras(out / "our.weights.h5", kf.config, kf.weights)
    work = out / "work"
    work.mkdir()
    files = {
        "keras": "m.keras",
        "weights_h5": "m.weights.h5",
        "legacy_h5": "m.h5",
        "k2_h5": "k2.h5",
        "npz": "w.npz",
        "safetensors": "m.safetensors",
        "pt": "m.pt",
        "our_keras": "our.keras",
        "our_weights_h5": "our.weights.h5",
    }
    return {kind: ((out / name).read_bytes(), name, work) for kind, name in files.items()}


def read_any(kind: str, path: Path, arch: Path) -> tuple[object, dict[str, np.ndarray]]:
    """(architecture, every array by a stable name), each array checked to be real numbers."""
    if kind == "npz":
        config, arrays = None, dict(enumerate(read_npz(path)))
    elif kind in ("safetensors", "pt"):
        arrays, config = read_torch_file(path)
    else:
        kf = read_keras(path, arch if kind == "weights_h5" else None)
        config = kf.config
        arrays = {
            (layer, sub, i): a
            for layer, subs in kf.weights.items()
            for sub, ws in subs.items()
            for i, a in enumerate(ws)
        }
    assert all(isinstance(a, np.ndarray) and a.dtype.kind in "iuf" for a in arrays.values())
    return config, arrays


@st.composite
def damage(draw, data: bytes) -> bytes:
    n = len(data)
    how = draw(st.sampled_from(["block", "bytes", "truncate"]))
    if how == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    out = bytearray(data)
    if how == "block":
        at = draw(st.integers(0, n - 16))
        out[at : at + 16] = draw(st.binary(min_size=16, max_size=16))
    else:
        for at, b in draw(
            st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=16)
        ):
            out[at] = b
    return bytes(out)


def rezipped(data: bytes, member: str, damaged: bytes) -> bytes:
    """The .keras archive with one member replaced (its CRC then matches the damage)."""
    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with src, zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, damaged if info.filename == member else src.read(info))
    return out.getvalue()


def check_clean(kind: str, path: Path, arch: Path, same_as: tuple | None = None) -> None:
    """Read cleanly or refused in one line; with ``same_as`` (our files), what reads must be
    exactly what was written."""
    try:
        got = read_any(kind, path, arch)
    except FileNotFoundError:
        return
    except ValueError as e:
        msg = str(e)
        assert "\n" not in msg, msg
        assert str(path) in msg, msg
        return
    if same_as is not None:
        (config, arrays), (want_config, want) = got, same_as
        assert config == want_config, "parses but differs: the architecture"
        assert list(arrays) == list(want), "parses but differs: the tensors' names"
        for k, a in arrays.items():
            assert a.dtype == want[k].dtype, k
            assert a.shape == want[k].shape, k
            assert np.array_equal(a, want[k]), f"parses but differs: {k}"


_WANT: dict[str, tuple] = {}


def undamaged(valid, kind: str) -> tuple:
    """What the undamaged file of ``kind`` reads as (read once per module, not per example)."""
    if kind not in _WANT:
        good, name, work = valid[kind]
        path = work / f"undamaged_{name}"
        path.write_bytes(good)
        _WANT[kind] = read_any(kind, path, work.parent / "m.json")
    return _WANT[kind]


KINDS = ["keras", "weights_h5", "legacy_h5", "k2_h5", "npz", "safetensors", "pt"]
OURS = ["our_keras", "our_weights_h5", "safetensors", "pt"]  # checksummed: refused or identical
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None)


@pytest.mark.keras
@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_damaged_file_reads_or_fails_cleanly(valid, kind, data):
    good, name, work = valid[kind]
    path = work / name
    path.write_bytes(data.draw(damage(good), label="damaged"))
    check_clean(kind, path, work.parent / "m.json")


@pytest.mark.keras
@pytest.mark.parametrize("kind", OURS)
@FUZZ
@given(data=st.data())
def test_our_damaged_files_refused_or_identical(valid, kind, data):
    """Files we wrote: damage is refused, or the file reads exactly as written."""
    good, name, work = valid[kind]
    want, path = undamaged(valid, kind), work / name
    path.write_bytes(data.draw(damage(good), label="damaged"))
    check_clean(kind, path, work.parent / "m.json", same_as=want)


@pytest.mark.keras
@pytest.mark.parametrize("member", ["config.json", "model.weights.h5", "metadata.json"])
@FUZZ
@given(data=st.data())
def test_our_damaged_keras_member_refused_or_identical(valid, member, data):
    """Damage inside our well-formed .keras (the zip's CRC recomputed): the checksums in
    metadata.json still catch it."""
    good, name, work = valid["our_keras"]
    want, path = undamaged(valid, "our_keras"), work / name
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        inner = z.read(member)
    path.write_bytes(rezipped(good, member, data.draw(damage(inner), label="damaged")))
    check_clean("our_keras", path, work.parent / "m.json", same_as=want)


@pytest.mark.keras
@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
@FUZZ
@given(data=st.data())
def test_damaged_keras_member_reads_or_fails_cleanly(valid, member, data):
    """Damage inside a well-formed archive: the zip's CRC no longer catches it."""
    good, name, work = valid["keras"]
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        inner = z.read(member)
    path = work / name
    path.write_bytes(rezipped(good, member, data.draw(damage(inner), label="damaged")))
    check_clean("keras", path, work.parent / "m.json")


@pytest.mark.keras
@pytest.mark.parametrize("kind", KINDS + OURS[:2])
def test_undamaged_files_read(valid, kind):
    """The fuzz starts from files that read: a failure above is the damage's doing."""
    good, name, work = valid[kind]
    (work / name).write_bytes(good)
    read_any(kind, work / name, work.parent / "m.json")
