"""Layer kinds: one module per family, each registering its Keras classes with ``@kind``.

Adding a kind = one module here (imported below) and its tests; nothing else changes.
"""

from . import activations, attention, bidirectional, convlstm, core, dense, merge, recurrent  # noqa: F401  (registration)
from .base import KINDS, Block, Layer, Spec, build, check_entry, kind

__all__ = ["KINDS", "Block", "Layer", "Spec", "build", "check_entry", "kind"]
