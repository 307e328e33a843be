#!/usr/bin/env python
"""Train the 5-weight sine RNN; the same CLI as ``python -m torch_rnnsin``."""

import sys

from torch_rnnsin.cli import main

if __name__ == "__main__":
    sys.exit(main())
