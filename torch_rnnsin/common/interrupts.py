"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives. In a
finalizer (a ``__del__``, a generator the garbage collector closes) it is printed as
'Exception ignored' and lost: a long run went on as if no one had asked it to stop.
While ``noted`` is in force, the handler also notes the signal, and a loop that calls
``check`` now and then (the training loop: after each batch) raises it again there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_pending = False


def _note(signum: int, frame: object) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def noted() -> Iterator[None]:
    """The noting handler while the body runs, where Python's own is in place (not where
    SIGINT is ignored, as in a background job, or a caller handles it, or in a thread);
    afterwards the previous handler again (Lightning leaves SIGINT ignored after an
    interrupt). Nested uses share one note, which the outermost clears on its way out: a
    later run in this process, even one that cannot install the handler, starts unnoted."""
    global _pending
    main = threading.current_thread() is threading.main_thread()  # signal's own rule
    previous = signal.getsignal(signal.SIGINT) if main else None
    installed = previous is signal.default_int_handler
    if installed:
        signal.signal(signal.SIGINT, _note)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        if installed:
            _pending = False


def check() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C was noted (and perhaps lost on its way)."""
    if _pending:
        raise KeyboardInterrupt
