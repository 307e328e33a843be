"""Writing files so that an interrupted run never leaves a truncated one.

A file is written under a temporary name and renamed over its real name once
complete. In a run folder (one holding the private ``.torch_rnnsin/`` folder)
the temporary lives in that private folder, where a later run of the same
folder may sweep what a killed process left; anywhere else it is
``.torch_rnnsin-<pid>.tmp.<name>`` beside the file, and only the process that
made it removes it. Nothing else is ever deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

PRIVATE = ".torch_rnnsin"  # a run folder's own: marker, lock, temporaries
_TEMP = re.compile(r"(\d+)\.tmp\.")  # <pid>.tmp.<name>, only ever inside PRIVATE


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
    tail = path.name[-200:]  # a temporary name within the 255-byte limit
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
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name for ``path``; rename it over ``path`` on success only."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")
