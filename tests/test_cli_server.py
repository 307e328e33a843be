"""tests/cli_server.py, which runs the CLI tests in forked children, against real processes:
the same exit status, stdout and stderr for a refusal, a help text, a run and a bug."""

from __future__ import annotations

import subprocess
import sys

import cli_server
import pytest
from conftest import ROOT

CASES = [
    ["-m", "torch_rnnsin", "port", "--help"],
    [str(ROOT / "train.py"), "--seq-len", "0"],
    ["-m", "torch_rnnsin", "port", "no-such.keras", "o.pt"],
    ["-c", "import sys; print('out'); sys.exit('a message')"],
]


@pytest.mark.parametrize("argv", CASES, ids=["help", "refused", "missing", "exit-message"])
def test_forked_run_equals_a_real_process(argv, tmp_path):
    if argv[0] == "-c":  # the server runs scripts and modules; -c is tested as a script
        script = tmp_path / "s.py"
        script.write_text(argv[1])
        argv = [str(script)]
    real = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    forked = cli_server.run(argv, tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )
    assert real.returncode != 0 or real.stdout  # each case says something


def test_a_bug_shows_its_traceback_and_exit_1(tmp_path):
    script = tmp_path / "bug.py"
    script.write_text("import os\nprint('before', flush=True)\nraise KeyError('k')\n")
    r = cli_server.run([str(script)], tmp_path)
    assert r.returncode == 1
    assert r.stdout == "before\n"
    assert r.stderr.startswith("Traceback")
    assert r.stderr.endswith("KeyError: 'k'\n")


def test_a_timeout_kills_the_child(tmp_path):
    script = tmp_path / "sleep.py"
    script.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        cli_server.run([str(script)], tmp_path, timeout=0.5)
