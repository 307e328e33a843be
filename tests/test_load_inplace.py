"""Keras files read in place (a copy-on-write mapping; a .keras's stored member at its offset in
the archive, CRC checked), pages handed back once copied: the same model as a plain read."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from port_helpers import layer, sequential

from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.io import read_h5, read_keras, release
from torch_rnnsin.port.io.guards import map_file
from torch_rnnsin.port.model import build_model, load_keras_model, save_keras_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("inplace")
    config = sequential(
        3, layer("LSTM", "a", units=5, return_sequences=True), layer("GRU", "b", units=4)
    )
    model = build_model(config)
    for ext in (".keras", ".weights.h5"):
        save_keras_model(model, d / f"m{ext}")
    return d, model


def test_same_model_as_a_plain_read(saved):
    d, model = saved
    want = model.state_dict()
    for name in ("m.keras", "m.weights.h5"):
        got = load_keras_model(d / name).state_dict()
        assert list(got) == list(want)
        for k, v in want.items():
            assert torch.equal(got[k], v), (name, k)


def test_keras_member_read_in_place_same_arrays_as_a_plain_read(saved):
    d, _ = saved
    with zipfile.ZipFile(d / "m.keras") as z:
        plain = read_h5(bytearray(z.read("model.weights.h5"))).arrays
    in_place = read_keras_tree_arrays(d)
    assert plain
    assert list(in_place) == list(plain)
    for k, v in plain.items():
        assert in_place[k].base is not None  # a view into the mapped archive, not a copy
        assert in_place[k].dtype == v.dtype, k
        assert np.array_equal(in_place[k], v), k
    kf = read_keras(d / "m.keras")
    assert len(kf.weights) == 2


def read_keras_tree_arrays(d):
    with zipfile.ZipFile(d / "m.keras") as z:
        info = z.getinfo("model.weights.h5")
    mm = map_file(d / "m.keras")
    raw = mm[info.header_offset : info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(raw[26:28], "little")
    start += int.from_bytes(raw[28:30], "little")
    return read_h5(mm, start=start, size=info.file_size).arrays


def test_a_damaged_stored_member_is_refused_by_its_crc(saved, tmp_path):
    d, _ = saved
    data = bytearray((d / "m.keras").read_bytes())
    with zipfile.ZipFile(d / "m.keras") as z:
        info = z.getinfo("model.weights.h5")
    at = info.header_offset + 30 + len(info.filename) + info.file_size // 2
    data[at] ^= 0x01
    bad = tmp_path / "bad.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(Refused, match=r"model\.weights\.h5.*bad CRC"):
        load_keras_model(bad)


def test_released_pages_read_again_from_the_file(saved):
    d, _ = saved
    kf = read_keras(d / "m.keras")
    a = next(iter(next(iter(kf.weights.values())).values()))[0]
    before = a.copy()
    release(a)
    release(np.ones(3))  # not from a file: nothing happens
    assert np.array_equal(a, before)
