"""The CLI for the tests without its imports: ``python tests/cli_server.py SOCKET`` imports
torch, Lightning, onnx and every command once, then forks a fresh child per CLI run.

A CLI test pays ~2 s (port, export) to ~5 s (train.py: Lightning) of CPU for imports
alone; the suite runs the CLI some forty times. ``run`` (used by conftest's ``run_cli``
and the CLI tests' helpers) asks this server instead of starting a new interpreter: the
child gets the caller's argv, working folder, environment and standard streams, runs
``train.py`` or ``-m torch_rnnsin`` as ``__main__`` (so ``cli.main`` and its exit status
are the real ones), then exits as Python would (threads joined, ``atexit`` run, streams
flushed). What it cannot give: the interpreter's start-up (the encoding of stdout, the
environment read at import time), so tests about those (``test_trust``, ``--help``'s
speed, signals sent to a run) start real processes.

The server runs one Python thread and checks before each fork that no thread started since
its imports (a fork while another thread holds a lock can deadlock; the imports leave only
the idle pools of OpenBLAS and onnxruntime, which handle a fork as multiprocessing's does).
One per pytest worker, started on first use, stopped at the session's end (``stop``).
``spawn`` and ``checkout_env`` also start tests/kcache.py's Keras workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = (  # what the commands import when they run (commands/ delays these)
    "torch_rnnsin.cli",
    "torch_rnnsin.lesson.preflight",
    "torch_rnnsin.lesson.lightning.lit_module",
    "torch_rnnsin.lesson.run",
    "torch_rnnsin.lesson.compare",
    "torch_rnnsin.lesson.convert",
    "torch_rnnsin.lesson.study.groups",
    "torch_rnnsin.lesson.study.report",
    "torch_rnnsin.export.onnx",
    "torch_rnnsin.port.check",
    "torch_rnnsin.port.inspect",
    "torch_rnnsin.port.model",
    "onnx",
    "onnxruntime",
)


# ----------------------------------------------------------------------------- client


def checkout_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """``env`` with this checkout's packages first on PYTHONPATH, and ``extra``."""
    path = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **extra, "PYTHONPATH": path}


def spawn(
    what: str, cmd: list[str], socket_path: str, log: str, env: dict[str, str]
) -> subprocess.Popen:
    """Start a server process (its output appended to ``log``) and wait until it has bound
    ``socket_path``, which it renames into place when ready; raise with its log if it dies."""
    with open(log, "a") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT, env=env
        )
    while not os.path.exists(socket_path):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} died:\n{Path(log).read_text()[-3000:]}")
        time.sleep(0.05)
    return proc


class Server:
    """The client side: the server process and its socket."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self) -> None:
        # /tmp, not TMPDIR: a socket's path has ~107 bytes
        self.dir = tempfile.mkdtemp(prefix="cli-", dir="/tmp")
        self.path = os.path.join(self.dir, "s")
        fd, self.log = tempfile.mkstemp(prefix="cli-server-", suffix=".log")
        os.close(fd)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a user's stdio
        cmd = [sys.executable, __file__, self.path]
        self.proc = spawn("the CLI server", cmd, self.path, self.log, checkout_env(env))

    def connect(self) -> socket.socket:
        with self.lock:
            if self.proc is None:
                self._start()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        return s

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


_SERVER = Server()


def run(
    argv: list[str],
    cwd: Path | str | None = None,
    timeout: float = 300,
    stdout: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd,
    timeout=timeout)``, served by a forked child. ``argv``: ``[".../train.py", ARGS...]``
    or ``["-m", "torch_rnnsin", ARGS...]``. ``stdout``: a descriptor to write to instead
    (then ``.stdout`` is empty); ``env``: the child's environment (default: this one)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if stdout is not None:  # the pipe stays, unused: its end is read as empty
        os.close(out_w)
        out_w = os.dup(stdout)
    null = os.open(os.devnull, os.O_RDONLY)
    req = {
        "argv": list(argv),
        "cwd": str(cwd or ROOT),
        "env": dict(os.environ if env is None else env),
    }
    with _SERVER.connect() as s:
        socket.send_fds(s, [(json.dumps(req) + "\n").encode()], [null, out_w, err_w])
        for fd in (null, out_w, err_w):
            os.close(fd)
        replies = s.makefile()
        pid = json.loads(replies.readline())["pid"]
        try:
            out, err = _read_both(out_r, err_r, time.monotonic() + timeout)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        line = replies.readline()
    if not line:
        raise RuntimeError(f"the CLI server died:\n{Path(_SERVER.log).read_text()[-3000:]}")
    code = json.loads(line)["returncode"]
    return subprocess.CompletedProcess([sys.executable, *argv], code, out, err)


def _read_both(out_r: int, err_r: int, deadline: float) -> tuple[str, str]:
    """Both pipes to their end (the child and any child of its own closed them)."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired("cli", 0)
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
        finally:
            os.close(out_r)
            os.close(err_r)
    return tuple(b"".join(chunks[fd]).decode(errors="replace") for fd in (out_r, err_r))


def stop() -> None:
    _SERVER.stop()


# ----------------------------------------------------------------------------- server

THREADS = 1  # the server's threads after its imports


def serve(path: str) -> None:
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    global THREADS
    THREADS = len(os.listdir("/proc/self/task"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(16)
    os.rename(path + ".tmp", path)  # clients wait for the name: it appears when ready
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                pid = _fork_one(conn, listener)
                fd = os.pidfd_open(pid)
                sel.register(fd, selectors.EVENT_READ, (pid, conn))
            else:  # a child ended: its exit status to its client
                pid, conn = key.data
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                with contextlib.suppress(OSError):  # the client left (a timeout)
                    conn.sendall((json.dumps({"returncode": code}) + "\n").encode())
                conn.close()


def _fork_one(conn: socket.socket, listener: socket.socket) -> int:
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not msg.endswith(b"\n"):
        msg += conn.recv(1 << 20)
    req = json.loads(msg)
    threads = len(os.listdir("/proc/self/task"))
    if threads > THREADS or threading.active_count() != 1:  # a fork now could deadlock
        raise RuntimeError(f"the CLI server has {threads} threads, not its {THREADS}")
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        _child(req, fds)  # never returns
    for fd in fds:
        os.close(fd)
    conn.sendall((json.dumps({"pid": pid}) + "\n").encode())
    return pid


def _child(req: dict, fds: list[int]) -> None:
    import atexit
    import runpy
    import traceback

    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
            os.close(fd)
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        argv = req["argv"]
        try:
            if argv[0] == "-m":
                sys.argv = [argv[1], *argv[2:]]  # runpy puts the module's path first
                sys.path[0] = os.getcwd()  # as `python -m` has it
                runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
            else:
                sys.argv = list(argv)
                sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
                runpy.run_path(argv[0], run_name="__main__")
            code = 0
        except SystemExit as e:  # as the interpreter reads sys.exit's argument
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                sys.stderr.write(f"{e.code}\n")
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        threading._shutdown()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:
                code = 120  # the interpreter's status when the last flush fails
    finally:
        os._exit(code & 0xFF)


if __name__ == "__main__":
    serve(sys.argv[1])
