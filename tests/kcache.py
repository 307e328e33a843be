"""Keras's own answers for the tests, from ONE warm Keras process per API for the whole
session (shared by the xdist workers), cached on disk.

Write a cross-check test like this::

    from kcache import keras_case, keras_cases

    CODE = '''
    inp = keras.Input((None,), dtype="int32")
    h = layers.Embedding(50, 4, mask_zero=True)(inp)
    model = keras.Model(inp, layers.Dense(2)(layers.LSTM(3)(h)))
    '''

    def test_embedding_lstm():
        case = keras_case(CODE, layer_outputs=True)  # Keras 3, a .keras file
        torch_model = load_keras_model(case.path)  # or case.source("weights") -> (file, arch)
        y = torch_model(*map(torch.from_numpy, case.inputs))
        np.testing.assert_allclose(y.numpy(), case.outputs[0], atol=1e-5)
        case.layers["LSTM 'lstm'"]  # that layer's outputs (layer_outputs=True)

The snippet defines ``model``; it sees ``keras`` (also ``K``: Keras 3, or tf_keras when
``api="k2"``), ``layers`` (``keras.layers``) and ``np``. Layer names are the same on every
run (Keras's name counters are reset before each case). Every float weight is then drawn
from uniform(-0.8, 0.8) with ``seed`` (a ``moving_variance`` from uniform(0.2, 1)).

``inputs``: None (generated as ``port --check`` does: the model's fixed batch or ``batch``,
a free time of ``time``, floats N(0, 1), integer ids in [0, Embedding input_dim) with ~20 %
zeros, boolean masks with a True per row), or a list of arrays in Keras's input order.

``layouts`` (default ``("keras",)`` for "k3", ``("h5",)`` for "k2"): "keras" (.keras),
"weights" (.weights.h5 + .json architecture), "legacy_h5" (Keras 3 ``model.save(".h5")``),
"h5" (Keras 2 ``model.save``), "k2_weights" (Keras 2 ``save_weights`` + .json).

Outputs come from Keras's ``predict`` (eager, one batch). Results are cached under the
session's folder shared by the xdist workers (``KCACHE_DIR`` to keep them across sessions),
keyed by sha256 of the code, API, options, inputs and Keras versions; the Keras processes
start on the first miss. ``keras_cases([dict(code=..., api=...), ...])`` submits many cases
at once (a module's fixture: one round trip per API). A test module without Keras installed
skips (with ``CI=true`` it fails).

The same workers serve ``port --check`` and ``compare``'s Keras run in CLI subprocesses
(``serve_checks``: ``RNNSIN_KERAS_CMD`` and ``RNNSIN_KERAS_RUN_CMD`` name ``tests/keras_client.py``) and run whole Keras scripts
(``run_script``: tests/keras_factory.py and the file-format tests' builders).

Run as ``python tests/kcache.py worker k3|k2 SOCKET LOCK``: a worker shared by the session's
pytest workers (one JSON request per line from each client, one JSON reply per line back).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import queue
import runpy
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cli_server import checkout_env, spawn
from filelock import FileLock

from keras_ref.loading import api_of  # h5py only, no Keras

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
VERSION = 1  # bump when what a worker writes changes
SCALE = 0.8
MODULES = {"k3": ("keras", "tensorflow"), "k2": ("tf_keras", "tensorflow")}
DEFAULT_LAYOUTS = {"k3": ("keras",), "k2": ("h5",)}
FILES = {  # layout -> (file, architecture or None)
    "keras": ("model.keras", None),
    "weights": ("model.weights.h5", "arch.json"),
    "legacy_h5": ("legacy.h5", None),
    "h5": ("model.h5", None),
    "k2_weights": ("weights.h5", "arch.json"),
}


def needs_keras(*modules: str) -> None:
    """Skip when a Keras package is missing, except with CI=true: then fail."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"{', '.join(missing)} not installed; install the 'keras' extra and tf-keras"
        if IN_CI:
            pytest.fail(f"CI=true and {msg}")
        pytest.skip(msg)


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One model built and run by Keras: its files, inputs and Keras's outputs."""

    dir: Path
    api: str
    inputs: list[np.ndarray]  # in Keras's input order
    outputs: list[np.ndarray]  # every model output, in Keras's output order
    layers: dict[str, list[np.ndarray]]  # "Class 'name'" -> outputs (layer_outputs=True)
    weights: list[np.ndarray]  # model.get_weights() after randomising
    input_names: list[str]
    layouts: tuple[str, ...]

    def source(self, layout: str | None = None) -> tuple[Path, Path | None]:
        """(file, architecture or None) of a layout (default: the first one saved)."""
        layout = layout or self.layouts[0]
        if layout not in self.layouts:
            raise KeyError(f"layout {layout!r} not saved (saved: {self.layouts})")
        file, arch = FILES[layout]
        return self.dir / file, arch and self.dir / arch

    @property
    def path(self) -> Path:
        return self.source()[0]


def keras_case(
    code: str,
    api: str = "k3",
    inputs: list[np.ndarray] | None = None,
    *,
    layouts: tuple[str, ...] | None = None,
    seed: int = 0,
    batch: int = 3,
    time: int = 7,
    layer_outputs: bool = False,
) -> Case:
    """One case (see the module's docstring)."""
    opts = dict(layouts=layouts, seed=seed, batch=batch, time=time, layer_outputs=layer_outputs)
    return keras_cases([dict(code=code, api=api, inputs=inputs, **opts)])[0]


def keras_cases(specs: list[dict]) -> list[Case]:
    """Many cases at once: each dict holds ``keras_case``'s arguments by name."""
    reqs = [_request(**s) for s in specs]
    for api in sorted({r["api"] for r in reqs}):
        needs_keras(*MODULES[api])
    with contextlib.ExitStack() as locks:
        for api in sorted({r["api"] for r in reqs}):
            locks.enter_context(FileLock(str(cache_dir() / f"kcache-{api}.lock")))
        missing = {r["key"]: r for r in reqs if not (cache_dir() / r["key"]).is_dir()}
        jobs = [(r, workers().get(r["api"]).submit(_work_order(r))) for r in missing.values()]
        for r, job in jobs:
            err = job.wait()
            if err is not None:
                raise RuntimeError(f"Keras could not build the case:\n{r['code']}\n{err}")
            os.replace(r["tmp"], cache_dir() / r["key"])
    return [_load(cache_dir() / r["key"], r["api"]) for r in reqs]


def _request(
    code: str,
    api: str = "k3",
    inputs: list[np.ndarray] | None = None,
    layouts: tuple[str, ...] | None = None,
    seed: int = 0,
    batch: int = 3,
    time: int = 7,
    layer_outputs: bool = False,
) -> dict:
    if api not in MODULES:
        raise ValueError(f"api must be 'k3' or 'k2', not {api!r}")
    layouts = tuple(layouts or DEFAULT_LAYOUTS[api])
    xs = None if inputs is None else [np.asarray(x) for x in inputs]
    h = hashlib.sha256()
    head = [VERSION, code, api, layouts, seed, batch, time, layer_outputs, versions(api)]
    h.update(json.dumps(head).encode())
    for x in xs or []:
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return dict(
        key=h.hexdigest()[:32],
        code=code,
        api=api,
        inputs=xs,
        layouts=layouts,
        seed=seed,
        batch=batch,
        time=time,
        layer_outputs=layer_outputs,
    )


def _work_order(r: dict) -> dict:
    """The worker's request; the case is written to a fresh folder, renamed when done."""
    r["tmp"] = tempfile.mkdtemp(prefix=f"{r['key']}.", dir=cache_dir())
    x_path = None
    if r["inputs"] is not None:
        x_path = str(Path(r["tmp"]) / "inputs.npz")
        np.savez(x_path, **{f"x{i}": x for i, x in enumerate(r["inputs"])})
    keys = ("code", "layouts", "seed", "batch", "time", "layer_outputs")
    return {"op": "case", "dir": r["tmp"], "inputs": x_path, **{k: r[k] for k in keys}}


def _load(d: Path, api: str) -> Case:
    meta = json.loads((d / "meta.json").read_text())
    with np.load(d / "result.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    names = meta["layers"]
    return Case(
        dir=d,
        api=api,
        inputs=[arrays[f"x{i}"] for i in range(meta["n_inputs"])],
        outputs=[arrays[f"y{i}"] for i in range(meta["n_outputs"])],
        layers={n: [arrays[f"l{i}_{j}"] for j in range(k)] for i, (n, k) in enumerate(names)},
        weights=[arrays[f"w{i}"] for i in range(meta["n_weights"])],
        input_names=meta["input_names"],
        layouts=tuple(meta["layouts"]),
    )


def versions(api: str) -> list[str]:
    out = []
    for m in MODULES[api]:
        try:
            out.append(f"{m}=={importlib.metadata.version(m.replace('_', '-'))}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{m} missing")
    return out


_CACHE: list[Path] = []


def configure(folder: Path) -> None:
    """Where cases are cached (conftest: a folder shared by the session's xdist workers);
    ``KCACHE_DIR`` wins when set."""
    _CACHE[:] = [Path(os.environ.get("KCACHE_DIR") or folder)]
    _CACHE[0].mkdir(parents=True, exist_ok=True)


def cache_dir() -> Path:
    if not _CACHE:
        configure(Path(tempfile.gettempdir()) / f"kcache-{os.getuid()}")
    return _CACHE[0]


# ----------------------------------------------------------------------------- workers


class Job:
    """A request sent to a worker; ``wait`` returns None or the error's text."""

    def __init__(self, worker: Worker, n: int) -> None:
        self.worker, self.n, self.reply = worker, n, None

    def wait(self) -> str | None:
        self.reply = self.worker.reply(self.n)
        return None if self.reply.get("ok") else self.reply.get("error", "failed")


class Worker:
    """One Keras process (``python tests/kcache.py worker API SOCKET``) shared by the
    session's pytest workers: the first to need it starts it, each connects to its socket
    in the shared cache folder, and it exits when the last one has disconnected."""

    def __init__(self, api: str) -> None:
        self.api, self.conn, self.proc, self.lock = api, None, None, threading.Lock()
        self.sent = self.received = 0
        self.replies: dict[int, dict] = {}

    def _connect(self) -> None:
        """Connect to the running worker, or start it; under a lock the worker also takes
        before it exits, and held until the worker has counted this client."""
        # in /tmp, named after the cache folder: a socket's path has ~107 bytes, TMPDIR more
        key = hashlib.sha256(str(cache_dir()).encode()).hexdigest()[:16]
        path = f"/tmp/kcw-{key}-{self.api}.sock"
        self.log = str(cache_dir() / f"worker-{self.api}.log")
        lock = str(cache_dir() / f"worker-{self.api}.lock")
        with FileLock(lock):
            self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.conn.connect(path)
            except (FileNotFoundError, ConnectionRefusedError):  # none, or a killed one's
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                self._start(path, lock)
                self.conn.connect(path)
            self.lines = self.conn.makefile("r")
            if self.lines.readline() != "counted\n":
                raise RuntimeError(
                    f"the Keras worker ({self.api}) refused a client:\n{self.tail()}"
                )

    def _start(self, path: str, lock: str) -> None:
        env = checkout_env(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        cmd = [sys.executable, __file__, "worker", self.api, path, lock]
        self.proc = spawn(f"the Keras worker ({self.api})", cmd, path, self.log, env)

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log).read_text()[-3000:]
        return ""

    def submit(self, request: dict) -> Job:
        with self.lock:
            if self.conn is None:
                self._connect()
            self.conn.sendall((json.dumps(request) + "\n").encode())
            self.sent += 1
            return Job(self, self.sent - 1)

    def reply(self, n: int) -> dict:
        with self.lock:
            while n not in self.replies:
                line = self.lines.readline()
                if not line:
                    raise RuntimeError(f"the Keras worker ({self.api}) died:\n{self.tail()}")
                self.replies[self.received] = json.loads(line)
                self.received += 1
            return self.replies.pop(n)

    def request(self, request: dict) -> dict:
        job = self.submit(request)
        job.wait()
        return job.reply

    def stop(self) -> None:
        """Disconnect; the one that started the worker waits for it to end (when the other
        pytest workers have disconnected too)."""
        if self.conn is not None:
            self.lines.close()
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=900)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Workers:
    def __init__(self) -> None:
        self.by_api = {api: Worker(api) for api in MODULES}

    def get(self, api: str) -> Worker:
        return self.by_api[api]

    def stop(self) -> None:
        for w in self.by_api.values():
            w.stop()


_WORKERS: list[Workers] = []


def workers() -> Workers:
    if not _WORKERS:
        _WORKERS.append(Workers())
    return _WORKERS[0]


def stop() -> None:
    """Stop the workers and the ``port --check`` server (conftest, at the session's end)."""
    if _WORKERS:
        _WORKERS.pop().stop()
    for server in _SERVERS:
        server.shutdown()
        server.server_close()
    _SERVERS.clear()


def run_script(path: Path, argv: list[str], api: str) -> Job:
    """Run a Keras script as ``python PATH ARGV...`` would, in the API's worker (started
    on first use, kept for the session; Keras's name counters reset first); ``.wait()``
    the job (None, or the error's text)."""
    needs_keras(*MODULES[api])
    return workers().get(api).submit({"op": "script", "path": str(path), "argv": argv})


# ----------------------------------------------------------------------------- port --check


_SERVERS: list[socketserver.UnixStreamServer] = []


class _CheckHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        req = json.loads(self.rfile.readline())
        argv = req["argv"]
        if argv[:1] == ["run"]:  # `python -m keras_ref run ...` (compare): Keras 3
            api, op = "k3", "run"
        else:
            op = "check"
            model = argv[argv.index("--") + 1] if "--" in argv else argv[-1]
            arch = next((a.split("=", 1)[1] for a in argv if a.startswith("--arch=")), None)
            try:
                api = api_of(
                    os.path.join(req["cwd"], model), arch and os.path.join(req["cwd"], arch)
                )
            except Exception:  # not a file Keras 2 wrote: Keras 3 reports what is wrong
                api = "k3"
        reply = workers().get(api).request({"op": op, **req})
        self.wfile.write((json.dumps(reply) + "\n").encode())


def serve_checks() -> str:
    """Serve ``port --check``'s Keras side (and ``compare``'s ``keras_ref run``) from the
    workers; returns the value for ``RNNSIN_KERAS_CMD`` and ``RNNSIN_KERAS_RUN_CMD`` (a
    client that forwards its arguments here)."""
    folder = tempfile.mkdtemp(prefix="kc-", dir="/tmp")  # not TMPDIR: a socket path has ~107 bytes
    path = os.path.join(folder, "s")
    server = socketserver.ThreadingUnixStreamServer(path, _CheckHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _SERVERS.append(server)
    client = Path(__file__).with_name("keras_client.py")
    return f"{sys.executable} {client} {path}"


# ----------------------------------------------------------------------------- worker side


def _randomise(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    new = []
    for v, w in zip(model.weights, model.get_weights(), strict=True):
        if w.dtype.kind != "f":
            new.append(w)
        elif "variance" in v.name:
            new.append(rng.uniform(0.2, 1.0, w.shape).astype(w.dtype))
        else:
            new.append(rng.uniform(-SCALE, SCALE, w.shape).astype(w.dtype))
    model.set_weights(new)


def _specs(model):
    """The model's inputs as ``check.Spec``s, integer bounds from Embedding input_dim."""
    from torch_rnnsin.port.check import Spec

    highs = {}
    for layer in model.layers:
        if type(layer).__name__ == "Embedding":
            with contextlib.suppress(Exception):
                highs[id(layer.input)] = layer.input_dim
    out = []
    for t in model.inputs:
        dtype = str(getattr(t.dtype, "name", t.dtype))
        out.append(Spec(t.name, tuple(t.shape), dtype, highs.get(id(t))))
    return out


def _save(K, model, d: Path, layouts: list[str]) -> None:
    for layout in layouts:
        file, arch = FILES[layout]
        if arch is not None:
            (d / arch).write_text(model.to_json())
            model.save_weights(d / file)
        else:
            model.save(d / file)


def fresh_names(K) -> None:
    """Keras's name counters reset. Keras 3's ``clear_session`` would also run a full
    ``gc.collect`` (0.2 s a call in a warm worker's heap); the cyclic GC runs anyway."""
    if K.__name__ == "keras":
        K.backend.clear_session(free_memory=False)
    else:
        K.backend.clear_session()


def build_case(K, req: dict) -> None:
    from keras_ref.port_check import predict_all, read_inputs
    from torch_rnnsin.port.check import make_inputs

    fresh_names(K)  # the same layer names on every run
    ns = {"keras": K, "K": K, "layers": K.layers, "np": np}
    exec(req["code"], ns)
    model = ns["model"]
    _randomise(model, req["seed"])
    d = Path(req["dir"])
    _save(K, model, d, req["layouts"])
    if req["inputs"]:
        xs = read_inputs(req["inputs"])
    else:
        xs = make_inputs(_specs(model), seed=req["seed"], batch=req["batch"], length=req["time"])
    ys, names, parts = predict_all(model, xs, layers=req["layer_outputs"])
    arrays = {f"x{i}": x for i, x in enumerate(xs)}
    arrays.update({f"y{i}": y for i, y in enumerate(ys)})
    arrays.update({f"l{i}_{j}": a for i, ps in enumerate(parts) for j, a in enumerate(ps)})
    arrays.update({f"w{i}": w for i, w in enumerate(model.get_weights())})
    np.savez(d / "result.npz", **arrays)
    meta = {
        "n_inputs": len(xs),
        "n_outputs": len(ys),
        "n_weights": len(model.get_weights()),
        "layers": [[n, len(p)] for n, p in zip(names, parts, strict=True)],
        "input_names": [t.name for t in model.inputs],
        "layouts": list(req["layouts"]),
    }
    (d / "meta.json").write_text(json.dumps(meta))


def _main(module: str, req: dict) -> dict:
    """``python -m MODULE ARGV`` in this process: ``main(argv)`` in the request's folder,
    its stdout and stderr captured."""
    main = importlib.import_module(module).main
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(req["cwd"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(req["argv"])
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 2
    finally:
        os.chdir(here)
    return {"ok": True, "rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _script(req: dict) -> dict:
    argv = sys.argv
    try:
        sys.argv = [req["path"], *req["argv"]]
        runpy.run_path(req["path"], run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            raise RuntimeError(f"{req['path']} exited with {e.code}") from e
    finally:
        sys.argv = argv
    return {"ok": True}


def _answer(K, req: dict) -> dict:
    try:
        if req["op"] == "case":
            build_case(K, req)
            return {"ok": True}
        if req["op"] == "check":
            return _main("keras_ref.port_check", req)
        if req["op"] == "run":
            return _main("keras_ref.__main__", req)
        fresh_names(K)  # layer names as in a fresh process
        return _script(req)
    except BaseException:
        return {"ok": False, "error": traceback.format_exc()[-4000:]}


def worker(api: str, path: str, lock: str) -> None:
    """Serve every client of ``path`` (the pytest workers), one request at a time in this
    thread (Keras's global state is not for threads), until the last client has left.
    Anything printed goes to the log."""
    from keras_ref.loading import keras_module

    K = keras_module(api)
    requests: queue.Queue = queue.Queue()
    clients = [0]
    count = threading.Lock()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(8)

    def read(conn: socket.socket) -> None:
        for line in conn.makefile("r"):
            requests.put((conn, json.loads(line)))
        requests.put((conn, None))

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            with count:
                clients[0] += 1
            conn.sendall(b"counted\n")
            threading.Thread(target=read, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    os.rename(path + ".tmp", path)  # clients wait for the name: it appears when ready
    while True:
        conn, req = requests.get()
        if req is not None:
            with contextlib.suppress(OSError):  # a client gone: nothing to answer
                conn.sendall((json.dumps(_answer(K, req)) + "\n").encode())
            continue
        conn.close()
        with count:
            clients[0] -= 1
            if clients[0] > 0:
                continue
        with FileLock(lock), count:  # no client is connecting now
            if clients[0] == 0:
                os.unlink(path)
                return


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    worker(*sys.argv[2:5])
elif __name__ == "__main__":
    sys.exit("usage: python tests/kcache.py worker k3|k2 SOCKET LOCK")
