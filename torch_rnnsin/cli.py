"""The entry point (``train.py``, ``python -m torch_rnnsin``, ``torch-rnnsin``): parse with
``commands.parser``, run the command, and turn what it raises into an exit status.

Bad input is a ``Refused`` (or an ``OSError`` about the user's file: not found, no
permission, a folder, already there): one line on stderr, exit status 2. Anything else
is a bug: its traceback, a line asking to report it, exit status 1. Ctrl-C: 130.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback

from .commands.parser import COMMANDS, build_parser, command_module
from .commands.report import safe_streams, silence_stdout
from .common.errors import Refused, one_line

USER_FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, FileExistsError)
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)  # the disk, not us
REPORT = "error: this is a bug in torch_rnnsin, not your input; please report it with the traceback above"


def fail(message: str, code: int = 2) -> int:
    """``message`` (one line) on stderr; the exit status."""
    sys.stderr.write(f"error: {message}\n")
    return code


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if prog is None:
        prog = "train.py" if sys.argv[0].endswith("train.py") else "python -m torch_rnnsin"
    if not argv or argv[0] not in COMMANDS:
        argv = ["train", *argv]  # train is the default: `train.py --epochs 5`
    if argv[0] == "train" and "--keras" in argv[1:]:  # train.py --keras: the comparison
        argv = ["compare", *(a for a in argv[1:] if a != "--keras")]
    safe_streams()  # file names printed whatever the locale
    args = build_parser(prog, argv[0]).parse_args(argv)
    try:
        return command_module(args.command).run(args)
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except (Refused, *USER_FILE_ERRORS) as e:
        return fail(one_line(e))
    except OSError as e:
        if e.errno not in FULL:
            return bug()
        silence_stdout()  # a full disk or stdout (> /dev/full): OUT was not published
        return fail(f"cannot write ({one_line(e)})")
    except KeyboardInterrupt:
        return fail("interrupted (Ctrl-C)", code=130)
    except Exception:
        return bug()


def bug() -> int:
    """The traceback of the exception being handled, the line asking to report it; 1."""
    traceback.print_exc()
    sys.stderr.write(REPORT + "\n")
    return 1
