"""Writing files so that an interrupted run never leaves a truncated one."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

_TMP = ".tmp"  # temporary names: .<name>.tmp<pid>


def remove_stale_temps(folder: str | os.PathLike) -> None:
    """Delete temporary files a killed process left in ``folder`` (never a finished file)."""
    for stale in Path(folder).glob(f".*{_TMP}*"):
        stale.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; rename it over ``path`` on success only."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}{_TMP}{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")
