"""Random flags, values and combinations given to the CLI (in-process): the answer is a
finished run (exit 0) or one line and exit 2 with nothing created (or, for a learning
rate large enough, the one-line NaN-loss stop, exit 1); never a traceback, never another
status. Runs are kept cheap: few epochs, short series, small models."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from conftest import random_keras_weights
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from torch_rnnsin import cli

HOSTILE_INTS = ["0", "-1", "1e3", "x", "", "2147483648", "18446744073709551616", "10**9", " 3"]
HOSTILE_FLOATS = ["nan", "inf", "-inf", "-0.0", "1e308", "1e-320", "0x10", "½", ""]


def ints(lo: int, hi: int):
    return st.one_of(st.integers(lo, hi).map(str), st.sampled_from(HOSTILE_INTS))


def floats(lo: float, hi: float):
    return st.one_of(st.floats(lo, hi, allow_nan=False).map(repr), st.sampled_from(HOSTILE_FLOATS))


FLAGS = {
    "--steps-per-cycle": ints(2, 12),
    "--cycles": st.one_of(ints(2, 12), st.sampled_from(["100000000", "1000000000000"])),
    "--noise": floats(0.0, 1.0),
    "--seq-len": ints(1, 6),
    "--test-size": floats(0.0, 1.0),
    "--hidden": st.one_of(ints(1, 4), st.sampled_from(["1000000", "1000000000"])),
    "--batch-size": ints(1, 50),
    "--epochs": st.sampled_from(["0", "1", "2", "-3", "x", "1.5"]),
    "--lr": floats(1e-4, 1e-2),
    "--seed": st.one_of(ints(0, 2**32 - 1), st.sampled_from(["4294967296", "-5"])),
    "--accelerator": st.sampled_from(["cpu", "auto", "gpu", "tpu", ""]),
    "--train-mode": st.sampled_from(["stateless", "stateful", "both", ""]),
    "--streams": ints(1, 8),
    "--targets": st.sampled_from(["last", "seq", "all"]),
    "--init-keras": st.sampled_from(["h1.npz", "h3.npz", "junk.npz", "nope.npz", "dir.npz"]),
    "--keras-model": st.sampled_from(["h1.npz"]),
    "--out": st.sampled_from(["run", "", "user", "file", "a" * 300, "/proc/x", "deep/er/run"]),
}
SWITCHES = ["--no-shuffle", "--resume", "--hid", "--ou", "--epoch", "-h"]


@st.composite
def argvs(draw) -> list[str]:
    argv: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=6, unique=True)):
        argv += [flag, draw(FLAGS[flag])]
    argv += draw(st.lists(st.sampled_from(SWITCHES), max_size=2, unique=True))
    if "--epochs" not in argv:
        argv += ["--epochs", "0"]
    if "--cycles" not in argv:
        argv += ["--cycles", "8"]
    return draw(st.permutations(argv)) if draw(st.booleans()) else argv


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def prepare_inputs(d: Path) -> None:
    np.savez(d / "h1.npz", *random_keras_weights(1, 0))
    np.savez(d / "h3.npz", *random_keras_weights(3, 0))
    (d / "junk.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    (d / "dir.npz").mkdir()
    (d / "user").mkdir()
    (d / "user" / "notes.txt").write_text("mine")
    (d / "file").write_text("mine")


@settings(
    max_examples=int(os.environ.get("RNNSIN_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(argv=argvs())
def test_cli_fuzz(argv):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        prepare_inputs(d)
        before = snapshot(d)
        cwd = os.getcwd()
        err, out = io.StringIO(), io.StringIO()
        os.chdir(d)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    code = cli.main(argv, prog="train.py")
                except SystemExit as e:  # argparse: --help (0) or a refusal (2)
                    code = e.code
        finally:
            os.chdir(cwd)
        err = err.getvalue()
        event(f"exit {code}")
        assert "Traceback" not in err, (argv, err)
        if code == 1:  # a legitimate answer too: the loss became NaN (a huge --lr)
            assert "loss became" in err, (argv, err)
            assert len(err.strip().splitlines()) == 1, (argv, err)
            return
        assert code in (0, 2), (argv, code, err)
        if code == 2:
            assert len(err.strip().splitlines()) == 1, (argv, err)
            assert snapshot(d) == before, (argv, "created or changed something", err)
        elif "-h" not in argv:
            assert any(d.rglob("metrics.json")), (argv, err)
        assert (d / "user" / "notes.txt").read_text() == "mine"
        assert (d / "file").read_text() == "mine"


COMPARE_FLAGS = {k: v for k, v in FLAGS.items() if k != "--accelerator"}
COMPARE_SWITCHES = ["--no-shuffle", "--keras-m", "--resume", "--accelerator", "-h"]


@st.composite
def compare_argvs(draw) -> list[str]:
    argv = ["compare"]
    for flag in draw(st.lists(st.sampled_from(sorted(COMPARE_FLAGS)), max_size=6, unique=True)):
        argv += [flag, draw(COMPARE_FLAGS[flag])]
    return argv + draw(st.lists(st.sampled_from(COMPARE_SWITCHES), max_size=2, unique=True))


@settings(
    max_examples=int(os.environ.get("RNNSIN_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(argv=compare_argvs())
def test_compare_fuzz(argv):
    """compare with Keras stubbed out (it 'fails', exit 1): refusals are one line, exit 2,
    nothing created; whatever passes the checks reaches the Keras step."""
    from unittest import mock

    from torch_rnnsin.commands import compare as compare_command
    from torch_rnnsin.lesson import compare

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        prepare_inputs(d)
        before = snapshot(d)
        cwd = os.getcwd()
        err = io.StringIO()
        os.chdir(d)
        try:
            with (
                contextlib.redirect_stderr(err),
                contextlib.redirect_stdout(io.StringIO()),
                mock.patch.object(
                    compare_command, "require_keras", autospec=True, return_value=None
                ),
                mock.patch.object(compare, "run_keras", autospec=True, return_value=3),
            ):
                try:
                    code = cli.main(argv, prog="train.py")
                except SystemExit as e:
                    code = e.code
        finally:
            os.chdir(cwd)
        err = err.getvalue()
        event(f"exit {code}")
        assert "Traceback" not in err, (argv, err)
        if code == 1:
            assert err.strip().endswith("failed with exit status 3"), (argv, err)
        elif code == 2:
            assert len(err.strip().splitlines()) == 1, (argv, err)
            assert snapshot(d) == before, (argv, "created or changed something", err)
        else:
            assert code == 0, (argv, code, err)
            assert "-h" in argv, (argv, code, err)
