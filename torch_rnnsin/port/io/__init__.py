"""Model files <-> (architecture, arrays): one module per format.

guards.py      size budget, zip safety, JSON limits, file checks, dtypes, checksums
hdf5.py        HDF5 parsed in an isolated child, arrays read in place (H5Tree)
config.py      the shape of a Keras config: layers, nested models, Keras 3 group names
keras3.py      Keras 3 weights (.weights.h5, a .keras's model.weights.h5): read and write
legacy_h5.py   legacy .h5 (Keras 2 and Keras 3): read
keras_file.py  .keras / .weights.h5 / .h5 as a KerasFile: read_keras, write_keras, read_arch
npz.py         the lesson's .npz
torchfile.py   .pt (torch.load(weights_only=True)) and .safetensors, checksummed
"""

from .guards import MAX_BYTES, check_file
from .hdf5 import isolated, read_h5, release
from .keras3 import stamp_weights_file
from .keras_file import KerasFile, NeedsArch, read_arch, read_keras, write_keras
from .npz import read_npz
from .torchfile import read_torch_file, write_torch_file

__all__ = [
    "MAX_BYTES",
    "KerasFile",
    "NeedsArch",
    "check_file",
    "isolated",
    "read_arch",
    "read_h5",
    "read_keras",
    "read_npz",
    "read_torch_file",
    "release",
    "stamp_weights_file",
    "write_keras",
    "write_torch_file",
]
