"""The command line: one parser, one sub-command per job. It parses and dispatches.

    train.py [flags]                       train (the default command)
    python -m torch_rnnsin compare ...     Keras vs torch vs NumPy, number by number
    python -m torch_rnnsin study ...       is stateful prediction always worse?
    python -m torch_rnnsin port IN OUT     convert a Keras model file
    python -m torch_rnnsin inspect IN      describe a model file
    python -m torch_rnnsin export IN OUT   ONNX, with the state as input and output

Each command module gives ``add_<name>_arguments(parser)`` (argparse only, so that
``--help`` and bad flags answer before anything heavy is imported) and
``run_<name>(args) -> exit status``. A ``ValueError`` or ``OSError`` they raise is
bad input: one line on stderr, exit status 2. Ctrl-C: exit status 130.
"""

from __future__ import annotations

import importlib
import os
import sys

from .args import OneLineParser

# name: (module, what it does); the module has add_<name>_arguments and run_<name>.
COMMANDS = {
    "train": ("run", "train the 5-weight sine RNN and compare both prediction modes"),
    "compare": ("compare", "Keras vs torch vs NumPy on the same weights, number by number"),
    "study": ("study.command", "is stateful prediction always worse? (a grid of models)"),
    "port": ("port.commands", "convert a Keras model file to torch (or back)"),
    "inspect": ("port.commands", "describe a model file: layers, shapes, what can be ported"),
    "export": ("export", "ONNX export that keeps the recurrent state"),
}
EPILOG = (
    "other commands: "
    + ", ".join(c for c in COMMANDS if c != "train")
    + " (python -m torch_rnnsin COMMAND --help)"
)


def _module(name: str):
    return importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")


def build_parser(prog: str = "train.py", command: str | None = None) -> OneLineParser:
    """Every command listed; the flags of ``command`` only (of all when None), so that a
    command whose module cannot be imported never stands in another's way."""
    parser = OneLineParser(
        prog=prog,
        description="The Keras sine-wave RNN lesson in PyTorch + Lightning.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_) in COMMANDS.items():
        p = sub.add_parser(
            name,
            prog=prog if name == "train" else f"{prog} {name}",  # train needs no name
            help=help_,
            description=help_[0].upper() + help_[1:] + ".",
            epilog=EPILOG if name == "train" else None,
            allow_abbrev=False,
        )
        if command in (None, name):
            getattr(_module(name), f"add_{name}_arguments")(p)
    return parser


def fail(message: str, code: int = 2) -> int:
    """One line on stderr; the exit status."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"error: {first}\n")
    return code


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if prog is None:
        prog = "train.py" if sys.argv[0].endswith("train.py") else "python -m torch_rnnsin"
    if not argv or argv[0] not in COMMANDS:
        argv = ["train", *argv]  # train is the default: `train.py --epochs 5`
    if argv[0] == "train" and "--keras" in argv[1:]:  # train.py --keras: the comparison
        argv = ["compare", *(a for a in argv[1:] if a != "--keras")]
    args = build_parser(prog, argv[0]).parse_args(argv)
    try:
        return getattr(_module(args.command), f"run_{args.command}")(args)
    except NotImplementedError as e:
        return fail(f"{args.command}: not available yet ({e})")
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, as a shell reports it
    except (ValueError, OSError) as e:
        return fail(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        return fail("interrupted (Ctrl-C)", code=130)
