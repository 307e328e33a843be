"""Trust under attack, round two (issue 21): a racing writer, a report that cannot be
printed, a symbolic link at OUT, NaN weights, a non-UTF-8 name on a strict stdout, a file
named like a flag, a config nested ~950 deep. Each case a test of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cli_server
import h5py
import numpy as np
import pytest
import torch
from kcache import needs_keras
from port_helpers import keras_arrays, layer, one_error_line, sequential

from torch_rnnsin import load_keras_model, save_keras_model
from torch_rnnsin.common import atomic
from torch_rnnsin.common.errors import Refused
from torch_rnnsin.port.model import build_model

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, stdout=subprocess.PIPE, **env: str) -> subprocess.Popen:
    """``python -m torch_rnnsin ARGS`` from this checkout, started (not waited for)."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.Popen(
        [sys.executable, "-m", "torch_rnnsin", *args],
        cwd=cwd,
        env=environ,
        stdout=stdout,
        stderr=subprocess.PIPE,
    )


def forked(*args: str, cwd: Path, stdout: int | None = None) -> tuple[int, str, str]:
    """``python -m torch_rnnsin ARGS``, run to its end by tests/cli_server.py (the tests of
    racing processes and of a strict stdout start real ones, ``cli``)."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = cli_server.run(["-m", "torch_rnnsin", *args], cwd, stdout=stdout, env=environ)
    return r.returncode, r.stdout, r.stderr


def finish(p: subprocess.Popen) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=300)
    decode = lambda b: (b or b"").decode("utf-8", "backslashreplace")  # noqa: E731
    return p.returncode, decode(out), decode(err)


def ported(seed: int = 0):
    """A GRU(3) -> Dense(1) model over 2 features, written without Keras."""
    rng = np.random.default_rng(seed)
    cfg = sequential(2, layer("GRU", "gru", units=3), layer("Dense", "dense", units=1))
    weights = {"gru": keras_arrays("GRU", 2, 3, rng), "dense": keras_arrays("Dense", 3, 1, rng)}
    return build_model(cfg, weights)


def predict(model, seed: int = 9) -> np.ndarray:
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 5, 2)).astype(np.float32))
    with torch.no_grad():
        return model(x).numpy()


# --- 1. OUT by a no-replace rename ---------------------------------------------------


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "link"])
def test_atomic_no_replace_second_writer_refused_first_file_whole(tmp_path, monkeypatch, renameat2):
    """Two writers hold temporaries for one name at once: the first to finish wins, the
    second gets FileExistsError naming the file, its temporary gone, the file the winner's."""
    if not renameat2:
        monkeypatch.setattr(atomic, "_renameat2", None)
    out = tmp_path / "o.pt"
    writers = [atomic.atomic_path(out, replace=False) for _ in range(3)]
    for w, data in zip(writers, (b"first", b"second", b"winner"), strict=True):
        w.__enter__().write_bytes(data)  # three temporaries at once
    writers[2].__exit__(None, None, None)  # the winner finishes first
    for loser in writers[:2]:
        with pytest.raises(FileExistsError, match=r"o\.pt already exists"):
            loser.__exit__(None, None, None)
        assert out.read_bytes() == b"winner"
    assert [p.name for p in tmp_path.iterdir()] == ["o.pt"]


def test_atomic_no_replace_inside_no_replace_and_replace_kept_by_default(tmp_path):
    out = tmp_path / "x.json"
    atomic.write_text(out, "1")
    atomic.write_text(out, "2")  # the lesson's files are rewritten: replace stays the default
    assert out.read_text() == "2"
    with atomic.no_replace(), pytest.raises(FileExistsError, match=r"x\.json"):
        atomic.write_text(out, "3")
    assert out.read_text() == "2"
    os.symlink("nowhere", tmp_path / "link.json")
    with atomic.no_replace(), pytest.raises(FileExistsError, match=r"link\.json"):
        atomic.write_text(tmp_path / "link.json", "4")  # a dangling link counts as there
    assert os.readlink(tmp_path / "link.json") == "nowhere"


def test_two_ports_racing_for_one_out_exactly_one_wins_whole(tmp_path):
    for seed in (1, 2):
        save_keras_model(ported(seed), tmp_path / f"m{seed}.keras")
    procs = [cli("port", f"m{seed}.keras", "out.pt", cwd=tmp_path) for seed in (1, 2)]
    results = [finish(p) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    winner = 1 if results[0][0] == 0 else 2
    loser = results[2 - winner]
    assert "out.pt" in one_error_line(loser[2])
    assert "wrote out.pt" in results[winner - 1][1]
    got = load_keras_model(tmp_path / "out.pt")  # whole: its checksums hold
    np.testing.assert_array_equal(predict(got), predict(ported(winner)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m1.keras", "m2.keras", "out.pt"]


@pytest.mark.parametrize("command", ["port", "export"])
def test_report_to_dev_full_exit_2_and_no_out(tmp_path, command, ort):
    """Publish, then report; a report that cannot be written removes OUT (ours), exit 2."""
    save_keras_model(ported(), tmp_path / "m.keras")
    out = "o.pt" if command == "port" else "o.onnx"
    with open("/dev/full", "w") as full:
        code, _, err = forked(command, "m.keras", out, cwd=tmp_path, stdout=full.fileno())
    assert code == 2, err
    line = one_error_line(err)
    assert "cannot write" in line, line
    assert f"{out} removed" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


# --- 2. a symbolic link at OUT ------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("ext", [".pt", ".safetensors", ".keras", ".weights.h5"])
def test_save_keras_model_refuses_a_dangling_symlink_untouched(tmp_path, ext, overwrite):
    link = tmp_path / f"a{ext}"
    os.symlink(tmp_path / "elsewhere", link)
    with pytest.raises((Refused, FileExistsError), match=f"a{ext}"):
        save_keras_model(ported(), link, overwrite=overwrite)
    assert os.readlink(link) == str(tmp_path / "elsewhere")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a{ext}"]


def test_save_keras_model_traced_module_refuses_a_symlink(tmp_path):
    link = tmp_path / "t.keras"
    os.symlink("elsewhere.keras", link)
    lstm = torch.nn.LSTM(2, 3, batch_first=True)
    with pytest.raises(Refused, match="symbolic link"):
        save_keras_model(lstm, link, overwrite=True, example_inputs=(torch.zeros(1, 4, 2),))
    assert os.readlink(link) == "elsewhere.keras"


# --- 3. NaN / inf weights -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("ext", [".pt", ".safetensors", ".keras", ".weights.h5"])
def test_nan_or_inf_weights_refused_on_save_naming_the_tensor(tmp_path, ext, bad):
    model = ported()
    with torch.no_grad():
        model.state_dict()["layers.1.linear.bias"].fill_(bad)
    with pytest.raises(Refused, match=r"'layers\.1\.linear\.bias' holds NaN or inf") as e:
        save_keras_model(model, tmp_path / f"m{ext}")
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "keras2"), [("t.keras", False), ("t.h5", True)])
def test_nan_weights_of_a_traced_module_refused_on_save(tmp_path, name, keras2):
    lstm = torch.nn.LSTM(2, 3, batch_first=True)
    with torch.no_grad():
        lstm.weight_hh_l0[1, 2] = float("nan")
    with pytest.raises(Refused, match="'weight_hh_l0' holds NaN or inf"):
        save_keras_model(
            lstm, tmp_path / name, example_inputs=(torch.zeros(1, 4, 2),), keras2=keras2
        )
    assert list(tmp_path.iterdir()) == []


def test_nan_weights_refused_on_export_naming_the_tensor(tmp_path, ort):
    from torch_rnnsin.export.onnx import export_onnx

    model = ported()
    with torch.no_grad():
        model.state_dict()["layers.0.cells.0.rnn.weight_hh_l0"][0, 0] = float("-inf")
    with pytest.raises(Refused, match=r"'layers\.0\.cells\.0\.rnn\.weight_hh_l0' holds NaN"):
        export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# --- 4. a non-UTF-8 file name on a strict-UTF-8 stdout ------------------------------------


def test_non_utf8_names_printed_safely_on_a_strict_stdout(tmp_path, ort):
    src = os.fsdecode(b"m\xff.keras")
    try:
        save_keras_model(ported(), tmp_path / src)
    except (UnicodeEncodeError, OSError) as e:  # a file system that takes UTF-8 names only
        pytest.skip(f"this file system refuses a non-UTF-8 name ({e})")
    strict = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C"}
    outs = {"port": os.fsdecode(b"o\xfe.pt"), "export": os.fsdecode(b"o\xfe.onnx")}
    for command in ("inspect", "port", "export"):
        args = [command, src] + ([outs[command]] if command in outs else [])
        code, out, err = finish(cli(*args, cwd=tmp_path, **strict))
        assert code == 0, (command, err)
        assert "Traceback" not in err
        if command == "port":
            assert out.startswith("wrote o\\udcfe.pt: 2 layers"), out
        if command == "inspect":
            assert "m\\udcff.keras" in out, out
    assert (tmp_path / outs["port"]).is_file()
    assert (tmp_path / outs["export"]).is_file()
    np.testing.assert_array_equal(
        predict(load_keras_model(tmp_path / outs["port"])), predict(ported())
    )


# --- 5. a model file named like a flag, through port --check -------------------------------


@pytest.mark.keras
def test_port_check_of_a_file_named_like_a_flag(tmp_path):
    needs_keras("keras")
    save_keras_model(ported(), tmp_path / "-m.keras")
    runs = {
        "o1.pt": ["port", "--check", "--", "-m.keras", "o1.pt"],
        "o2.pt": ["port", "./-m.keras", "o2.pt", "--check"],
    }
    for out, args in runs.items():
        code, stdout, err = forked(*args, cwd=tmp_path)
        assert code == 0, err[-2000:]
        assert "within the tolerance" in stdout, stdout
        assert f"wrote {out}" in stdout, stdout
        np.testing.assert_array_equal(predict(load_keras_model(tmp_path / out)), predict(ported()))


# --- 6. a config nested ~950 deep ---------------------------------------------------------


def _text(cls: str, name: str, body: str) -> str:
    return f'{{"class_name": "{cls}", "config": {{"name": "{name}"{body}}}}}'


def deep_keras(path: Path, depth: int, how: str) -> Path:
    """A .keras whose config is ``depth`` levels deep, written as text (json.dumps itself
    recurses): Sequential models inside each other around a Dropout, or TimeDistributed
    wrapping TimeDistributed ... around a Dense."""
    if how == "nested":
        inner = _text("Dropout", "drop", ', "rate": 0.1')
        for i in range(depth):
            inner = _text("Sequential", f"s{i}", ', "layers": [' + inner + "]")
    else:
        inner = _text("Dense", "dense", ', "units": 1')
        for i in range(depth):
            inner = _text("TimeDistributed", f"td{i}", ', "layer": ' + inner)
    first = _text("InputLayer", "input_layer", ', "batch_shape": [null, 3, 2]')
    config = _text("Sequential", "m", ', "layers": [' + first + ", " + inner + "]")
    weights = path.with_suffix(".h5")
    with h5py.File(weights, "w") as f:
        f.create_group("layers")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        z.writestr("config.json", config)
        z.write(weights, "model.weights.h5")
    weights.unlink()
    return path


@pytest.mark.parametrize(
    ("depth", "how", "said"),
    [
        (950, "nested", "config.json"),
        (950, "wrapped", "config.json"),
        (40, "nested", "nested more than 32 deep"),
        (40, "wrapped", "TimeDistributed"),
    ],
)
def test_export_of_a_deeply_nested_config_one_line(tmp_path, depth, how, said, ort):
    deep_keras(tmp_path / "deep.keras", depth, how)
    code, _, err = forked("export", "deep.keras", "o.onnx", cwd=tmp_path)
    assert code == 2, err[-2000:]
    line = one_error_line(err)
    assert said in line, line
    assert "deep.keras" in line, line
    assert "RecursionError" not in err
    assert not (tmp_path / "o.onnx").exists()
