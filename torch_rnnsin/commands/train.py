"""``train`` (the default command): train the lesson's model, evaluate both prediction
modes, write the run folder. Exit status: 0 done, 1 the loss became NaN/inf, 2 refused,
130 interrupted. ``train.py --keras ...`` is ``compare ...`` (rewritten in ``cli``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

from ..common import interrupts
from ..common.errors import Refused
from ..common.runfolder import folder_arg, new_default_folder, open_run_folder
from ..lesson.config import check_unused, validate
from ..lesson.flags import add_config_args, config_from, given


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument(
        "--out",
        type=folder_arg,
        default=None,
        metavar="DIR",
        help="run folder: new, empty, or a run's own (default: runs/<timestamp>)",
    )
    p.add_argument(
        "--init-keras",
        metavar="PATH",
        default=None,
        help="initial weights in Keras order: .weights.h5, .keras or .npz",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    p.epilog = (
        "train.py --keras [compare's flags]: run 'compare' instead (Keras vs torch vs NumPy). "
        + (p.epilog or "")
    )


@contextlib.contextmanager
def frozen_imports() -> Iterator[None]:
    """Heavy imports without the cyclic GC: torch's and Lightning's ~10^6 new objects
    set off collections that find nothing to free. Then those objects are frozen, so
    that the collections during training, and the one at exit, no longer walk them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def run(args: argparse.Namespace) -> int:
    typed = given(args)
    cfg = config_from(args)
    if args.resume and args.out is None:
        raise Refused("--resume needs --out DIR, the run to continue")
    if args.resume and args.init_keras is not None:
        raise Refused(
            "--init-keras: not read with --resume (a resumed run continues from its checkpoint)"
        )
    check_unused(cfg, typed)
    validate(cfg)  # bad settings answer before torch is imported
    with frozen_imports():
        from ..lesson.preflight import CHECKPOINT, prepare, read_weights

    init = None
    if args.init_keras is not None:
        init, cfg = read_weights("--init-keras", args.init_keras, cfg, "hidden" in typed)
    ckpt = prepare(cfg, args.out, args.resume)
    out = args.out if args.out is not None else new_default_folder(Path("runs"))
    with open_run_folder(out, resume=ckpt is not None):  # before Lightning is imported
        try:
            with interrupts.noted():  # one lost in the imports is raised after the first batch
                with frozen_imports():
                    from ..lesson.lightning.lit_module import NonFiniteLossError
                    from ..lesson.run import summary_table, train_in
                try:
                    metrics = train_in(cfg, out, init, ckpt, plot_children=True)
                except NonFiniteLossError as e:
                    kept = out / CHECKPOINT
                    kept = f"; the last good checkpoint is kept: {kept}" if kept.exists() else ""
                    sys.stderr.write(f"error: {e}{kept}\n")
                    return 1
        except KeyboardInterrupt:  # at any moment, the imports too
            if (out / CHECKPOINT).exists():
                then = (
                    f"its checkpoint is kept; continue with the same flags and --out {out} --resume"
                )
            else:
                then = f"before its first checkpoint; start it again with the same --out {out}"
            sys.stderr.write(f"\ninterrupted; {then}\n")
            return 130
    print(summary_table(metrics, out))
    return 0
