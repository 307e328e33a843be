"""A recurrent model written in PyTorch, saved as a Keras file that Keras predicts the same with.

    sig = save_torch_as_keras(module, "model.keras", example_inputs=(x,))
    keras.models.load_model("model.keras").predict(sig.keras_inputs(x))  # == sig.keras_outputs(module(x))

read.py     the forward pass, read with torch.fx and run on the example inputs
kgraph.py   the Keras Functional graph being built: layers, tensors seen from torch (layouts)
modules.py  torch.nn modules -> Keras layers, weights through port/layers.py's tables
ops.py      torch functions and tensor methods -> Keras layers or layout bookkeeping
write.py    Keras 3 .keras / .weights.h5 (formats.write_keras) and Keras 2 legacy .h5
convert.py  save_torch_as_keras and the signature (Keras inputs / outputs <-> torch)
"""

from __future__ import annotations

from .convert import KerasSignature, Slot, convert, save_torch_as_keras

__all__ = ["KerasSignature", "Slot", "convert", "save_torch_as_keras"]
