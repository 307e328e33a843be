"""One parser, one sub-command per job. It imports each command's module for its flags
only (argparse, no torch), so that ``--help`` and bad flags answer before anything heavy.

    train.py [flags]                       train (the default command)
    python -m torch_rnnsin compare ...     Keras vs torch vs NumPy, number by number
    python -m torch_rnnsin study ...       is stateful prediction always worse?
    python -m torch_rnnsin port IN OUT     convert a Keras model file
    python -m torch_rnnsin inspect IN      describe a model file
    python -m torch_rnnsin export IN OUT   ONNX, with the state as input and output
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..common.args import OneLineParser

DESCRIPTION = (
    "Port recurrent models between Keras and PyTorch exactly (with ONNX export that keeps "
    "the state), and the sine-wave lesson that started it."
)
# name: (module in torch_rnnsin.commands, what it does)
COMMANDS = {
    "train": ("train", "train the 5-weight sine RNN and compare both prediction modes"),
    "compare": ("compare", "Keras vs torch vs NumPy on the same weights, number by number"),
    "study": ("study", "is stateful prediction always worse? (a grid of models)"),
    "port": ("port", "convert a Keras model file to torch (or back)"),
    "inspect": ("inspect", "describe a model file: layers, shapes, what can be ported"),
    "export": ("export", "ONNX export that keeps the recurrent state"),
}
EPILOG = (
    "other commands: "
    + ", ".join(c for c in COMMANDS if c != "train")
    + " (python -m torch_rnnsin COMMAND --help)"
)


def command_module(name: str) -> ModuleType:
    """The module of a command: ``add_arguments(parser)`` and ``run(args) -> int``."""
    return importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")


def build_parser(prog: str = "train.py", command: str | None = None) -> OneLineParser:
    """Every command listed; the flags of ``command`` only (of all when None), so that a
    command whose module cannot be imported never stands in another's way."""
    parser = OneLineParser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
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
            command_module(name).add_arguments(p)
    return parser
