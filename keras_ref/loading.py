"""Load a Keras file with Keras itself (Keras 3, or tf_keras for a Keras 2 file), without
paying for the initialisers whose values the file's weights replace.

Keras builds every layer before it assigns the saved weights, and building runs each
weight's initialiser: for a recurrent layer an orthogonal matrix (a QR of a 4·units × units
matrix), 81 % of ``load_model``'s time on an LSTM(1024)×4 file. ``skipped_initializers``
swaps the random initialisers for zeros while the model is built; the saved weights are
assigned afterwards as usual, so the loaded model is the same, bit for bit (tested in
tests/test_check.py). Measured on an LSTM(1024)×4 file (134 MB, busy 2-core machine, two
rounds): Keras 3 building and loading the .h5 13.2–17.4 s -> 2.0–2.3 s, the .keras
14.0–17.2 s -> 2.4–2.6 s (TensorFlow's import, 7–13 s here, not included). Constant initialisers (zeros, ones,
``unit_forget_bias``) are left alone: they are cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from types import ModuleType

import h5py

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter


def keras_major(path: str) -> str:
    """ "2" for a Keras 2 / tf.keras .h5 or config .json, else "3" (no Keras imported)."""
    name = path.lower()
    if name.endswith(".json"):
        with open(path) as f:
            version = str(json.load(f).get("keras_version", "3"))
    elif name.endswith(".h5") and not name.endswith(".weights.h5"):
        with h5py.File(path, "r") as h5:
            v = h5.attrs.get("keras_version", b"3")
            version = v.decode() if isinstance(v, bytes) else str(v)
    else:
        return "3"
    return "2" if version.startswith("2") else "3"


def api_of(path: str, arch: str | None) -> str:
    """ "k2" when tf_keras must run the file (a weights-only file follows its --arch)."""
    src = arch if path.lower().endswith(".weights.h5") and arch is not None else path
    return "k2" if keras_major(src) == "2" else "k3"


def keras_module(api: str) -> ModuleType:
    """keras (Keras 3) for "k3", tf_keras (Keras 2) for "k2"."""
    if api == "k2":
        import tf_keras

        return tf_keras
    import keras

    return keras


def _random_initializers(K: ModuleType) -> list[type]:
    """The initialiser classes that draw random numbers (their subclasses inherit
    ``__call__``), for Keras 3 or tf_keras."""
    if K.__name__ == "tf_keras":
        from tf_keras.src.initializers import initializers as m

        names = ("RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling")
        return [*(getattr(m, n) for n in names), m.Orthogonal, m.Identity]
    from keras.src.initializers import random_initializers as m

    return [m.RandomNormal, m.TruncatedNormal, m.RandomUniform, m.VarianceScaling, m.Orthogonal]


@contextlib.contextmanager
def skipped_initializers(K: ModuleType) -> Iterator[None]:
    """While inside, Keras's random initialisers return zeros (of the same shape and dtype)."""
    zeros = K.initializers.Zeros()

    def call(self, shape, dtype=None, **kwargs):  # the initialiser signature
        return zeros(shape, dtype=dtype)

    classes = _random_initializers(K)
    saved = [c.__dict__["__call__"] for c in classes]
    try:
        for c in classes:
            c.__call__ = call
        yield
    finally:
        for c, f in zip(classes, saved, strict=True):
            c.__call__ = f


def load(path: str, arch: str | None = None, full_init: bool = False):
    """The Keras model of ``path``, built without random initialisation unless
    ``full_init``. With ``arch`` (a .json, .keras or .h5 holding the architecture),
    ``path`` holds the weights only (a ``.weights.h5`` needs one)."""
    if path.lower().endswith(".weights.h5") and arch is None:
        raise ValueError(f"{path}: a weights-only file needs --arch")
    api = api_of(path, arch)
    K = keras_module(api)
    ctx = contextlib.nullcontext() if full_init else skipped_initializers(K)
    with ctx:
        if arch is not None:
            model = _load_file(K, arch)
            model.load_weights(path)
            return model
        return _load_file(K, path)


def _load_file(K: ModuleType, path: str):
    if path.lower().endswith(".json"):
        with open(path) as f:
            return K.models.model_from_json(f.read())
    return K.models.load_model(path, compile=False)


def keras_of(model) -> ModuleType:
    """The Keras module (keras or tf_keras) a model object comes from."""
    return sys.modules[type(model).__module__.split(".")[0]]
