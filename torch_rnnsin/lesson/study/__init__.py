"""``python -m torch_rnnsin study``: is stateful prediction always worse?

A grid of small models (seq_len x noise x hidden size x training mode x seed x
learning rate), each trained until its validation loss stops improving, then
scored in both prediction modes on the test part. Modules: ``grid`` (settings),
``trainer`` (many models as one tensor program, early stopping), ``groups``
(the grid over worker processes), ``report`` (table, answer, plots), ``command``
(the command line).
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Parse ``argv`` as the study command's arguments and run it; bad input: one line
    on stderr, exit status 2."""
    import sys

    from .command import parse_args, run_study

    args = parse_args(argv)
    try:
        return run_study(args)
    except (ValueError, OSError) as e:
        print(f"study: error: {e}", file=sys.stderr)
        return 2
