"""What the commands print: never a false report, never a file behind a failed one.

A command that writes OUT publishes it first (a no-replace rename, so the report can
say "wrote OUT" truthfully), then prints its report and flushes it. If stdout cannot
take the report (``> /dev/full``, a closed pipe, an I/O error), the command has failed:
OUT is removed — it is ours, the no-replace rename made it and nobody can have replaced
it since — and the failure is one line on stderr, exit status 2 (141 for a closed pipe).
Printing first and writing after would be worse: a report saying "wrote OUT" for a file
that then fails to appear. Names are printed whatever the locale (see ``safe_streams``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..common.errors import Refused, one_line


def safe_streams() -> None:
    """stdout / stderr that print any file name: a strict encoder (say
    PYTHONIOENCODING=utf-8:strict, or an ASCII locale) escapes what it cannot encode
    (a non-UTF-8 name's bytes arrive as lone surrogates) instead of raising."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def silence_stdout() -> None:
    """Point stdout at the null device, so that Python's last flush at exit (of what
    could not be written) raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


def report(text: str, written: list[Path] = ()) -> None:
    """Print ``text`` and flush it; if that fails, remove ``written`` (the files this
    command has just published) and fail: ``Refused`` (exit 2), or the
    ``BrokenPipeError`` itself when the reader has left (exit 141)."""
    ours = {p: os.stat(p) for p in written if p.is_file()}
    try:
        print(text)
        sys.stdout.flush()
    except OSError as e:
        removed = []
        for p, st in ours.items():
            try:
                now = os.stat(p)
            except OSError:
                continue
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                p.unlink()
                removed.append(p)
        silence_stdout()
        if isinstance(e, BrokenPipeError):
            raise
        gone = f"; {', '.join(map(str, removed))} removed" if removed else ""
        raise Refused(f"cannot write the report to stdout ({one_line(e)}){gone}") from None
