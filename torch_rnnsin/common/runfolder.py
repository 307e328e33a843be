"""The run folder: never a user's folder taken over, one writer at a time.

``--out`` must be a new folder, an empty one, or a run folder of ours (one
holding ``.torch_rnnsin/run.json``, written when the run starts). While a run
writes a folder it holds an exclusive ``flock`` on ``.torch_rnnsin/lock``; a
second process is refused, naming the first one's pid. A child forked while the lock is
held (train.py's plot processes) closes its copy: the lock ends with the run's process,
even when it is killed and a child is still drawing. Default folders,
``runs/<timestamp>``, are created with ``mkdir`` (never checked, then created):
two runs started in the same second get ``runs/<stamp>`` and ``runs/<stamp>-2``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .atomic import PRIVATE, remove_stale_temps, write_json
from .errors import Refused

MARKER = "run.json"
LOCK = "lock"
NAME_MAX, PATH_MAX = 255, 4096  # bytes: Linux's limits for a name and a whole path
_HELD: set[int] = set()  # lock descriptors of this process's open run folders


def _close_held_in_child() -> None:
    for fd in _HELD:  # the flock is the open file's: a child's copy would keep it held
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def is_run_folder(path: Path) -> bool:
    return (path / PRIVATE / MARKER).is_file()


def _shown(names: list[str], at_most: int = 4) -> str:
    more = f", … ({len(names)} entries)" if len(names) > at_most else ""
    return ", ".join(names[:at_most]) + more


def folder_arg(text: str) -> Path:
    """argparse type of ``--out``: any folder name but the empty one."""
    if not text:
        raise argparse.ArgumentTypeError("'': an empty name; give a folder")
    return Path(text)


def check_out_path(out: Path, flag: str = "--out") -> None:
    """A name a folder can have, at a place where one can be created."""
    if len(os.fsencode(str(out.absolute()))) >= PATH_MAX:
        raise Refused(f"{flag} {str(out)[:40]}…: the path is longer than {PATH_MAX} bytes")
    for part in out.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise Refused(
                f"{flag} {part[:40]}…: a name of {len(os.fsencode(part))} bytes; at most {NAME_MAX}"
            )
    try:
        parent = out
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise Refused(f"{flag} {out}: {parent} is not a folder")
        if out.exists() and not out.is_dir():
            raise Refused(f"{flag} {out}: exists and is not a folder")
    except OSError as e:
        raise Refused(f"{flag} {out}: {e.strerror}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Refused(f"{flag} {out}: cannot create a folder under {parent} (not writable)")


def check_out_contents(
    out: Path, resume: bool, flag: str = "--out", *, locked: bool = False
) -> None:
    """New, empty, or ours and not being written by another run (``locked``: by this one):
    then ``--resume`` continues it, or it holds nothing yet."""
    if not out.exists():
        if resume:
            raise Refused(f"--resume: {flag} {out} does not exist; no run to continue")
        return
    # a live run's files are not a finished run's: name its writer, not --resume
    if not locked and _held_by_another(out / PRIVATE / LOCK):
        raise _busy(out, flag)
    try:
        entries = sorted(e for e in os.listdir(out) if e != PRIVATE)
    except OSError as e:
        raise Refused(f"{flag} {out}: cannot list the folder ({e.strerror})") from None
    if not is_run_folder(out):
        if entries:
            raise Refused(
                f"{flag} {out}: holds files that are not a run's ({_shown(entries)}); "
                "choose a new or empty folder"
            )
        if resume:
            raise Refused(f"--resume: {flag} {out} is empty; no run to continue")
        return
    if entries and not resume:
        raise Refused(
            f"{flag} {out}: already holds a run ({_shown(entries)}); "
            "add --resume to continue it, or choose another folder"
        )


def timestamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def new_default_folder(parent: Path, prefix: str = "") -> Path:
    """``parent/<prefix><YYYYmmdd-HHMMSS>``, created now; ``-2``, ``-3``, … if taken."""
    parent.mkdir(parents=True, exist_ok=True)
    stamp = prefix + timestamp()
    for i in range(1, 10_000):
        path = parent / (stamp if i == 1 else f"{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: no free name for a run folder {stamp}-N")


def _make_folder(out: Path, flag: str) -> list[Path]:
    """mkdir ``out`` and missing parents; returns those created (to undo on failure)."""
    missing = []
    p = out
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    created = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:  # another process made it first: fine, the lock decides
                continue
            created.append(d)
    except OSError as e:
        for d in reversed(created):
            d.rmdir()
        raise Refused(f"{flag} {out}: cannot create the folder ({e.strerror})") from None
    return created


def _held_by_another(lock: Path) -> bool:
    """Whether a live run holds the folder's lock (tried, never created or kept)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # a flock is its open file's: closing ours leaves another's held
    return False


def _busy(out: Path, flag: str) -> Refused:
    try:
        pid = (out / PRIVATE / LOCK).read_text().strip()
    except OSError:
        pid = ""
    writer = f"pid {pid}" if pid.isdigit() else "another process"
    return Refused(
        f"{flag} {out}: {writer} is writing this run folder; "
        "wait for it to finish or choose another folder"
    )


@contextlib.contextmanager
def open_run_folder(
    out: Path, resume: bool = False, kind: str = "train", flag: str = "--out"
) -> Iterator[Path]:
    """Create (or reopen, to resume) a run folder and hold its lock while the body runs.

    On a refusal, whatever this call created is removed again."""
    created = _make_folder(out, flag)
    private = out / PRIVATE
    new_private = not private.exists()
    fd = None
    try:
        private.mkdir(exist_ok=True)
        fd = os.open(private / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            created, new_private = [], False  # the folder is the other process's: touch nothing
            raise _busy(out, flag) from None
        _HELD.add(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        check_out_contents(out, resume, flag, locked=True)  # again, now that no one else can
        if not is_run_folder(out):
            write_json(
                private / MARKER,
                {"written_by": "torch_rnnsin", "kind": kind, "created": time.time()},
            )
        remove_stale_temps(out)  # left by a killed run of this folder
    except BaseException:
        if fd is not None:
            _HELD.discard(fd)
            os.close(fd)
        if new_private:
            for name in (MARKER, LOCK):
                with contextlib.suppress(FileNotFoundError):
                    (private / name).unlink()
            with contextlib.suppress(OSError):
                private.rmdir()
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    try:
        yield out
    finally:
        _HELD.discard(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
