"""Layer kinds: one module per family, each registering its Keras classes with ``@kind``.

Adding a kind = one module here (imported below) and its tests; nothing else changes.
"""

# Each module registers its classes when imported.
from . import activation_layers as activation_layers
from . import activations as activations
from . import attention as attention
from . import bidirectional as bidirectional
from . import conv as conv
from . import conv_other as conv_other
from . import convlstm as convlstm
from . import core as core
from . import dense as dense
from . import merge as merge
from . import norm as norm
from . import ops as ops
from . import pooling as pooling
from . import recurrent as recurrent
from . import shape as shape
from .base import KINDS, Block, Layer, Spec, build, check_entry, kind

__all__ = ["KINDS", "Block", "Layer", "Spec", "build", "check_entry", "kind"]
