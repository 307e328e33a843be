"""Writing files so that an interrupted run never leaves a truncated one.

A file is written under a temporary name and renamed over its real name once
complete. A file that must be new (``replace=False``, or inside ``no_replace()``:
a command's OUT, ``save_keras_model`` without ``overwrite``, ``export_onnx``) appears by
a no-replace rename (``renameat2(RENAME_NOREPLACE)``, else ``link`` + ``unlink``): of
two writers racing for one name exactly one wins, whole, and the other gets
``FileExistsError`` naming it. In a run folder (one holding the private ``.torch_rnnsin/`` folder)
the temporary lives in that private folder, where a later run of the same
folder may sweep what a killed process left; anywhere else it is
``.torch_rnnsin-<pid>.tmp.<name>`` beside the file, and only the process that
made it removes it (``<k>-<name>``: a count keeps two writers in one process
apart). Nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

PRIVATE = ".torch_rnnsin"  # a run folder's own: marker, lock, temporaries
_TEMP = re.compile(r"(\d+)\.tmp\.")  # <pid>.tmp.<name>, only ever inside PRIVATE
_COUNT = itertools.count()  # two writers of one name in one process: two temporaries
_REPLACE = contextvars.ContextVar("torch_rnnsin_replace", default=True)
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1  # Linux's <fcntl.h> and <linux/fs.h>
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    _renameat2.argtypes += [ctypes.c_uint]
except (AttributeError, OSError):  # not Linux, or an older C library
    _renameat2 = None


def check_new_file(path: str | os.PathLike, command: str) -> None:
    """OUT of a command that writes one file: it must not exist yet (never overwritten,
    not even a dangling link) and its folder must."""
    path = Path(path)
    if os.path.lexists(path):
        raise FileExistsError(f"OUT {path} already exists; {command} never overwrites a file")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"OUT {path}: folder {path.parent} does not exist")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**22  # someone else's live process (or a number no pid can be)
    return True


def temp_name(path: Path) -> Path:
    """Where ``path`` is written before the rename; keeps its extension (Keras, matplotlib
    and h5py read the format from it)."""
    tail = f"{next(_COUNT)}-{path.name[-200:]}"  # unique in this process; within 255 bytes
    private = path.parent / PRIVATE
    if private.is_dir():
        return private / f"{os.getpid()}.tmp.{tail}"
    return path.with_name(f".torch_rnnsin-{os.getpid()}.tmp.{tail}")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries a killed run left in ``folder``'s private folder: regular
    files named ``<pid>.tmp.<name>`` there whose process is gone, nothing else.
    Returns what was deleted."""
    private = Path(folder) / PRIVATE
    if not private.is_dir() or private.is_symlink():
        return []
    removed = []
    for p in private.iterdir():
        m = _TEMP.match(p.name)
        if m and p.is_file() and not p.is_symlink() and not _alive(int(m.group(1))):
            p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def no_replace() -> Iterator[None]:
    """Inside: every ``atomic_path`` without an explicit ``replace`` makes new files only
    (for writers that take no flag of their own, such as the port's file writers)."""
    token = _REPLACE.set(False)
    try:
        yield
    finally:
        _REPLACE.reset(token)


def exists_error(path: Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists (another writer got there first); not replaced")


def rename_new(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` only if nothing is at ``dst`` (not even a dangling link),
    atomically: ``FileExistsError`` otherwise, and ``src`` stays."""
    if _renameat2 is not None:
        if (
            _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
            == 0
        ):
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise exists_error(dst)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):
            raise OSError(err, f"{dst}: {os.strerror(err)}")
    try:  # the file system has no RENAME_NOREPLACE: a hard link fails on any existing name
        os.link(src, dst)
    except FileExistsError:
        raise exists_error(dst) from None
    os.unlink(src)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, replace: bool | None = None) -> Iterator[Path]:
    """Yield a temporary name for ``path``; on success only, rename it over ``path``
    (``replace=True``) or to ``path`` only if nothing is there yet (``replace=False``:
    ``FileExistsError`` naming it otherwise, the other file untouched). ``None``: False
    inside ``no_replace()``, else True."""
    path = Path(path)
    replace = _REPLACE.get() if replace is None else replace
    tmp = temp_name(path)
    try:
        yield tmp
        if replace:
            os.replace(tmp, path)
        else:
            rename_new(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")
