"""Shared fixtures. The Keras cross-checks are the centrepiece: with CI=true they
must run, and a missing TensorFlow is a failure, never a skip."""

from __future__ import annotations

import os

# One thread per process: two pytest workers, the Keras workers and the CLI's processes
# already share the cores, and pool threads spinning for work cost ~10 % of the CPU. Set
# before numpy, torch or TensorFlow is loaded here; the processes started from here inherit it.
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
):
    os.environ.setdefault(_var, "1")

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import cli_server  # noqa: E402
import kcache  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from kcache import needs_keras  # noqa: E402

__all__ = ["needs_keras"]  # for the test modules that import it from here

# A suite started in the background (`nohup`, `cmd &` in a script) inherits SIGINT ignored,
# and so would the runs the Ctrl-C tests start: they would ignore their Ctrl-C, as a program
# should. A handled SIGINT is reset to the default by exec; an ignored one is not.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


FIRST = ("tests/test_notebook.py",)  # long single tests: at the start, not at the tail


def pytest_collection_modifyitems(items: list) -> None:
    """The longest single tests first: run last, one could keep a worker busy alone."""
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))


@pytest.fixture(scope="session", autouse=True)
def keras_worker(tmp_path_factory):
    """tests/kcache.py for the session: its cache in the folder the xdist workers share,
    and ``port --check`` in any subprocess served by its warm Keras worker (started on the
    first request, stopped at the end)."""
    kcache.configure(shared_tmp(tmp_path_factory) / "kcache")
    names = ("RNNSIN_KERAS_CMD", "RNNSIN_KERAS_RUN_CMD")
    old = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, kcache.serve_checks()))
    yield
    kcache.stop()
    cli_server.stop()
    for n, value in old.items():
        if value is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = value


@pytest.fixture(scope="session")
def kr():
    """The keras_ref package with its lesson functions (imports TensorFlow)."""
    try:
        import keras_ref
        import keras_ref.model
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"CI=true and the Keras reference cannot be imported: {e}")
        pytest.skip(f"Keras/TensorFlow not installed ({e}); install the 'keras' extra")
    return keras_ref


def random_keras_weights(hidden: int, seed: int, scale: float = 0.8) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(1, hidden), (hidden, hidden), (hidden,), (hidden, 1), (1,)]
    return [rng.uniform(-scale, scale, size=s).astype(np.float32) for s in shapes]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python train.py ARGS`` (captured, text), run by tests/cli_server.py's forked child."""
    return cli_server.run([str(ROOT / "train.py"), *args], cwd, timeout)


def run_module(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m torch_rnnsin ARGS`` (captured, text), run by tests/cli_server.py."""
    return cli_server.run(["-m", "torch_rnnsin", *args], cwd, timeout)


SMALL = ["--cycles", "60", "--epochs", "30", "--batch-size", "100"]


def start_train(*args: str) -> subprocess.Popen:
    """A real ``python train.py ARGS`` process (not the CLI server's fork), for the tests
    that send it signals; stderr captured, with Python's fault handler on so that
    ``interrupt`` can show where a run that ignores its Ctrl-C is."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )


def interrupt(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Ctrl-C for ``proc``; its stderr once it has exited. A run still there ``timeout``
    seconds later fails the test with its signal masks and every thread's stack."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        try:
            masks = [
                line.strip()
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith(("SigBlk", "SigIgn", "SigCgt"))
            ]
        except OSError:
            masks = []
        proc.send_signal(signal.SIGABRT)  # the fault handler prints each thread's stack
        try:
            err = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1]
        pytest.fail(f"still running {timeout:g} s after SIGINT ({', '.join(masks)}):\n{err}")


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """One finished train.py run (SMALL flags), shared by the tests that only read it
    or copy it: each CLI process costs seconds of imports."""
    out = tmp_path_factory.mktemp("small") / "run"
    r = run_cli(*SMALL, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def shared_tmp(tmp_path_factory) -> Path:
    """A folder all xdist workers of this session share (the session's own otherwise)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def keras3():
    """Keras 3, imported in this process (for round trips and Hypothesis)."""
    needs_keras("keras", "tensorflow")
    import keras

    return keras


@pytest.fixture(scope="session")
def keras2(keras3):
    """Keras 2 (tf_keras), imported in this process, after Keras 3 (for the kind tests)."""
    needs_keras("tf_keras", "tensorflow")
    import tf_keras

    return tf_keras


@pytest.fixture(scope="session")
def keras_models(tmp_path_factory):
    """Every model of tests/keras_factory.py, built once per session (both Keras APIs,
    side by side in the two Keras workers) and shared by the xdist workers: a
    keras_factory.Built."""
    needs_keras("keras", "tensorflow", "tf_keras")
    return build_keras_models(shared_tmp(tmp_path_factory))


def build_keras_models(root: Path):
    """tests/keras_factory.py's models in ``root``, built by the first caller (any xdist
    worker, any thread); a failure is remembered for the others."""
    import keras_factory
    from filelock import FileLock

    out, failed = root / "keras_factory", root / "keras_factory.failed"
    with FileLock(str(root / "keras_factory.lock")):
        if failed.exists():
            raise RuntimeError(failed.read_text())
        try:
            return keras_factory.build(out)
        except Exception as e:
            failed.write_text(f"{type(e).__name__}: {e}")
            raise


def build_graph_models(root: Path) -> Path:
    """tests/graph_models.py's models in ``root``, built once for all xdist workers."""
    from filelock import FileLock

    out = root / "graph_models"
    with FileLock(str(root / "graph_models.lock")):
        if not (out / "cases.json").exists():  # the two halves side by side
            script = ROOT / "tests" / "graph_models.py"
            jobs = [kcache.run_script(script, ["build", str(out), a], a) for a in ("k3", "k2")]
            for job in jobs:
                err = job.wait()
                assert err is None, err
            halves = [json.loads((out / f"cases_{a}.json").read_text()) for a in ("k3", "k2")]
            (out / "cases.json").write_text(json.dumps(halves[0] | halves[1], indent=1))
    return out


@pytest.fixture(scope="session", autouse=True)
def keras_models_early(request, tmp_path_factory, keras_worker):
    """When this session's tests use the Keras model folders, start building them now, in
    the background (the Keras workers build; this process runs the first tests meanwhile)."""
    uses = {f for item in request.session.items for f in getattr(item, "fixturenames", ())}
    wanted = [
        b
        for f, b in (("keras_models", build_keras_models), ("built", build_graph_models))
        if f in uses
    ]
    if not wanted or any(importlib.util.find_spec(m) is None for m in ("keras", "tf_keras")):
        return
    root = shared_tmp(tmp_path_factory)

    def quietly(build) -> None:
        with contextlib.suppress(Exception):  # a failure is the fixture's to report
            build(root)

    for build in wanted:
        threading.Thread(target=quietly, args=(build,), daemon=True).start()


@pytest.fixture(scope="session")
def ort():
    """onnxruntime (the 'onnx' extra); with CI=true a missing one fails, never skips."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        if IN_CI:
            pytest.fail(f"CI=true and onnx/onnxruntime cannot be imported: {e}")
        pytest.skip(f"onnx/onnxruntime not installed ({e}); install the 'onnx' extra")
    return onnxruntime
