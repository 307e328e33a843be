"""The one exception that means "bad input": the commands print it on one line, exit 2.

Anything else that escapes is a bug and shows its traceback.
"""

from __future__ import annotations

TOLERANCE = 1e-5  # agreement with Keras / onnxruntime: |a - b| <= TOLERANCE * max(1, |b|)


class Refused(ValueError):
    """A model, file, option or value we do not take; the message is one line naming it."""


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
