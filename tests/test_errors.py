"""Every bad input the CLI can be given: one line on stderr, exit status 2, no traceback,
and nothing created on disk. In-process (``cli.main``), so each case costs milliseconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import copy_run, random_keras_weights

from torch_rnnsin import cli
from torch_rnnsin.commands.parser import COMMANDS, command_module
from torch_rnnsin.common.errors import Refused
from torch_rnnsin.lesson import config


def call(argv: list[str]) -> int:
    try:
        return cli.main(argv, prog="train.py")
    except SystemExit as e:  # argparse's refusals
        return e.code


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def files(tmp_path):
    """Weight files and odd things named like them, in tmp_path/in."""
    d = tmp_path / "in"
    d.mkdir()
    junk = d / "junk.weights.h5"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    np.savez(d / "few.npz", *random_keras_weights(1, 0)[:3])
    np.savez(d / "h3.npz", *random_keras_weights(3, 0))
    np.savez(d / "h1.npz", *random_keras_weights(1, 0))
    (d / "dir.npz").mkdir()
    os.mkfifo(d / "fifo.npz")
    (d / "w.txt").write_text("not weights")
    return {p.stem.split(".")[0]: str(p) for p in d.iterdir()} | {"missing": str(d / "nope.npz")}


def refused(capsys, tmp_path, monkeypatch, argv: list[str]) -> str:
    """Run ``argv`` in tmp_path; assert exit 2, one line, no traceback, nothing created."""
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code = call(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert snapshot(tmp_path) == before, "something was created or changed"
    return lines[0]


CASES = [
    # settings
    (["--seq-len", "0"], "--seq-len 0"),
    (["--seq-len", "-3"], "--seq-len -3"),
    (["--seq-len", "6000"], "--seq-len 6000"),
    (["--seq-len", "two"], "'two'"),
    (["--test-size", "0"], "--test-size 0"),
    (["--test-size", "1.5"], "--test-size 1.5"),
    (["--batch-size", "0"], "--batch-size 0"),
    (["--epochs", "-1"], "--epochs -1"),
    (["--noise", "nan"], "--noise nan"),
    (["--noise", "-1"], "--noise -1"),
    (["--steps-per-cycle", "0"], "--steps-per-cycle 0"),
    (["--cycles", "0"], "--cycles 0"),
    (["--hidden", "0"], "--hidden 0"),
    (["--lr", "0"], "--lr 0"),
    (["--lr", "inf"], "--lr inf"),
    (["--accelerator", "tpu9"], "tpu9"),
    (["--seed", "18446744073709551616"], "--seed 18446744073709551616"),
    (["--seed", "-1"], "--seed -1"),
    (["--cycles", "100000000"], "GiB"),
    (["--hidden", "100000"], "GiB"),
    (["--train-mode", "stateful", "--streams", "400", "--cycles", "60"], "--streams 400"),
    # abbreviations and flags that would be ignored
    (["--hid", "3"], "--hid"),
    (["--ou", "x"], "--ou"),
    (["compare", "--keras-m", "{h1}"], "--keras-m"),
    (["compare", "--accelerator", "cpu"], "--accelerator"),
    (["--keras-model", "{h1}"], "unrecognized arguments: --keras-model"),  # add --keras
    (["compare", "--keras-model", "{h1}", "--epochs", "5"], "--epochs: not read with --keras"),
    (["compare", "--keras-model", "{h1}", "--lr", "0.1"], "--lr: not read with --keras-model"),
    (["compare", "--keras-model", "{h1}", "--init-keras", "{h1}"], "--init-keras: not read"),
    (["--streams", "3"], "--streams: only read by --train-mode stateful"),
    (["--targets", "seq"], "--targets: only read by --train-mode stateful"),
    (["--train-mode", "stateful", "--batch-size", "5"], "--batch-size: only read by"),
    (["--train-mode", "stateful", "--no-shuffle"], "--no-shuffle: only read by"),
    (["--resume"], "--resume needs --out"),
    (["--init-keras", "{h1}", "--resume", "--out", "r"], "--init-keras: not read with --resume"),
    # weight files
    (["--init-keras", "{missing}"], "nope.npz: no such file"),
    (["--init-keras", "{dir}"], "dir.npz: not a regular file"),
    (["--init-keras", "{fifo}"], "fifo.npz: not a regular file"),
    (["--init-keras", "{junk}"], "junk.weights.h5"),
    (["--init-keras", "{few}"], "few.npz"),
    (["--init-keras", "{w}"], "w.txt"),
    (["--init-keras", "w" * 300 + ".npz"], "File name too long"),
    (["--init-keras", "{h3}", "--hidden", "1"], "hidden size 3, but --hidden 1"),
    (["compare", "--keras-model", "{h3}", "--hidden", "1"], "hidden size 3, but --hidden 1"),
    (["compare", "--keras-model", "{fifo}"], "not a regular file"),
    # --out
    (["--out", ""], "empty name"),
    (["--out", "a" * 300], "a name of 300 bytes"),
    (["--out", "a/" * 2100], "longer than 4096 bytes"),
    (["--out", "/proc/x"], "/proc/x: cannot create the folder"),
    (["--out", "/proc/x/y"], "cannot create the folder"),
    (["compare", "--out", "/proc/x"], "/proc/x"),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(capsys, tmp_path, monkeypatch, files, argv, named):
    monkeypatch.setattr(config, "available_memory", lambda: 8 * 2**30)
    if argv[0] == "compare" and "/proc/x" in argv:  # the folder is made after Keras is found
        import importlib.util

        if importlib.util.find_spec("keras") is None:
            pytest.skip("compare refuses first for want of Keras")
    line = refused(capsys, tmp_path, monkeypatch, [a.format(**files) for a in argv])
    assert named in line, line


def test_memory_estimate_is_given_up_front(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "available_memory", lambda: 8 * 2**30)
    line = refused(capsys, tmp_path, monkeypatch, ["--cycles", "100000000"])
    gib = float(line.split("about ")[1].split(" GiB")[0])
    est = config.estimate_bytes(config.TrainConfig(cycles=100_000_000)) / 2**30
    assert gib == pytest.approx(est, abs=0.1)
    assert gib > 50
    assert "8.0 GiB are available" in line
    # the reference run is far below any machine's memory
    assert config.estimate_bytes(config.TrainConfig()) < 50 * 2**20


def test_resume_with_init_keras_does_not_speak_of_hidden(capsys, tmp_path, monkeypatch, files):
    line = refused(
        capsys, tmp_path, monkeypatch, ["--init-keras", files["h3"], "--resume", "--out", "r"]
    )
    assert "hidden" not in line


def test_out_with_files_of_a_user_is_refused_and_kept(capsys, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in (".env.tmpl", ".notes.tmp", ".bashrc.tmp.bak", "history.csv", "metrics.json"):
        (proj / name).write_text(f"user's {name}")
    (proj / ".cache.tmpdir").mkdir()
    for out in (str(proj), "."):
        monkeypatch.chdir(proj)
        for extra in ([], ["--resume"]):
            code = call(["--cycles", "20", "--epochs", "1", "--out", out, *extra])
            err = capsys.readouterr().err
            assert code == 2
            assert "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
            assert "holds files that are not a run's" in err
    assert sorted(p.name for p in proj.iterdir()) == sorted(
        [
            ".env.tmpl",
            ".notes.tmp",
            ".bashrc.tmp.bak",
            "history.csv",
            "metrics.json",
            ".cache.tmpdir",
        ]
    )
    assert (proj / "metrics.json").read_text() == "user's metrics.json"


def test_out_that_is_a_file_is_refused(capsys, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("keep me")
    line = refused(capsys, tmp_path, monkeypatch, ["--out", "file"])
    assert "is not a folder" in line
    assert (tmp_path / "file").read_text() == "keep me"


def test_resume_of_an_empty_or_missing_folder(capsys, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert "is empty" in refused(capsys, tmp_path, monkeypatch, ["--out", "empty", "--resume"])
    assert "does not exist" in refused(capsys, tmp_path, monkeypatch, ["--out", "no", "--resume"])


def _tampered(small_run, tmp_path, change) -> Path:
    out = copy_run(small_run[0], tmp_path / "run")
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    torch.save(change(ckpt), out / "last.ckpt")
    return out


TAMPER = {
    "a list": (lambda c: [1, 2, 3], "holds no torch_rnnsin run settings"),
    "history=5": (lambda c: c | {"history": 5}, "'history' is not a list"),
    "no state_dict": (
        lambda c: {k: v for k, v in c.items() if k != "state_dict"},
        "'state_dict' is not the weights",
    ),
    "other shapes": (
        lambda c: c | {"state_dict": {k: v[..., :0] for k, v in c["state_dict"].items()}},
        "'state_dict' is not the weights",
    ),
    "epoch mismatch": (lambda c: c | {"epoch": 99}, "'epoch' 99"),
    "no optimizer": (lambda c: c | {"optimizer_states": []}, "'optimizer_states'"),
    "no generator": (lambda c: c | {"shuffle_gen_state": 5}, "shuffle_gen_state"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_checkpoint_with_resume(capsys, small_run, tmp_path, monkeypatch, case):
    from conftest import SMALL

    change, named = TAMPER[case]
    out = _tampered(small_run, tmp_path, change)
    line = refused(capsys, tmp_path, monkeypatch, [*SMALL, "--out", str(out), "--resume"])
    assert named in line, line


def test_checkpoint_Lightning_cannot_restore_is_one_line(capsys, small_run, tmp_path, monkeypatch):
    """Past our own checks (the loop state emptied): Lightning's failure, in one line."""
    from conftest import SMALL

    out = _tampered(small_run, tmp_path, lambda c: c | {"loops": {}})
    monkeypatch.chdir(tmp_path)
    before = (out / "last.ckpt").read_bytes()
    code = call([*SMALL, "--epochs", "31", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot resume from it" in err
    assert (out / "last.ckpt").read_bytes() == before


@pytest.mark.parametrize(
    ("raised", "code", "named"),
    [
        (Refused("IN x.keras: layer 'relu' refused\nsecond line"), 2, "layer 'relu' refused"),
        (FileNotFoundError("IN nope.keras: no such file"), 2, "nope.keras"),
        (PermissionError("OUT o.pt: permission denied"), 2, "permission denied"),
        (IsADirectoryError("IN d: a folder"), 2, "a folder"),
        (FileExistsError("OUT o.pt already exists"), 2, "already exists"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
@pytest.mark.parametrize("command", ["port", "inspect", "export"])
def test_command_refusals_become_one_line(capsys, monkeypatch, command, raised, code, named):
    """What a command raises for bad input reaches the user as one line and an exit status."""
    module = command_module(command)

    def boom(args):
        raise raised

    monkeypatch.setattr(module, "run", boom)
    argv = [command, "a", "b"] if command != "inspect" else [command, "a"]
    assert call(argv) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert named in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "raised",
    [
        ValueError("a bug's ValueError"),
        OSError("disk full"),
        NotImplementedError("being written"),
        KeyError("x"),
    ],
)
def test_anything_else_is_a_bug_with_its_traceback(capsys, monkeypatch, raised):
    """Not a Refused (nor an OSError about the user's file): the traceback, a line asking
    to report it, exit status 1."""

    def boom(args):
        raise raised

    monkeypatch.setattr(command_module("port"), "run", boom)
    assert call(["port", "a", "b"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert type(raised).__name__ in err
    assert err.strip().splitlines()[-1] == cli.REPORT


def test_the_porters_refusals_are_one_line_and_its_bugs_tracebacks(capsys, monkeypatch, tmp_path):
    """The porter raises Refused for bad input: one line, exit 2; a ValueError from inside it
    is a bug: its traceback, exit 1."""
    import torch_rnnsin.port.model as port_model
    from torch_rnnsin.common.errors import Refused

    def refuse(*a, **k):
        raise Refused("x.keras: LSTM 'lstm': cell_clip=3.0 is not supported\nmore")

    monkeypatch.setattr(port_model, "load_keras_model", refuse)
    monkeypatch.chdir(tmp_path)
    for argv in (["port", "x.keras", "o.pt"], ["inspect", "x.keras"]):
        assert call(argv) == 2
        assert (
            capsys.readouterr().err
            == "error: x.keras: LSTM 'lstm': cell_clip=3.0 is not supported\n"
        )

    def bug(*a, **k):
        raise ValueError("an internal mistake")

    monkeypatch.setattr(port_model, "load_keras_model", bug)
    assert call(["inspect", "x.keras"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_command_that_cannot_load_does_not_stop_the_others(capsys, monkeypatch):
    monkeypatch.setitem(COMMANDS, "export", ("no_such_module", "broken"))
    assert call(["--seq-len", "0"]) == 2
    assert "--seq-len 0" in capsys.readouterr().err
    with pytest.raises(ModuleNotFoundError):
        call(["export", "a", "b"])
