"""The command line: one module per sub-command (train, compare, study, port, inspect,
export), each with ``add_arguments(parser)`` (argparse only) and ``run(args) -> exit
status``; ``parser`` lists them. They parse, call the library and print. This is the
only place that delays heavy imports (so that ``--help`` and bad flags answer at once);
``torch_rnnsin.cli.main`` turns a ``Refused`` into one line and exit status 2.
"""
