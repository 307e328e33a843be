"""argparse as every command (and ``keras_ref``) uses it: no abbreviations, a bad flag
reported in one line, numbers whose bad value is named. Imports only argparse."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that refuses abbreviations and reports a bad flag in one line."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints the usage too)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def number(kind: type) -> Callable[[str], int | float]:
    """argparse type that names the flag's bad value in its one-line error."""

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None

    parse.__name__ = kind.__name__
    return parse
