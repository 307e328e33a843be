"""Keras model files as (config, weights): ``.keras``, ``.weights.h5`` (Keras 3), legacy ``.h5``
(Keras 2 and 3). Reading never imports Keras, never unpickles, never follows an HDF5 link.

Files this package writes carry a stamp (``.keras``: in metadata.json; ``.weights.h5``: a
root attribute) with the sha256 of every array and of the config, checked on load; a
``.weights.h5`` stamp also holds the config, so it reads without an architecture. Keras's
own files have no checksum: damage that still parses cannot be detected there.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...common.atomic import atomic_path
from ...common.errors import Refused, one_line
from . import keras3, legacy_h5
from .config import config_layers
from .guards import (
    MAX_JSON_BYTES,
    STAMP,
    check_file,
    map_file,
    open_zip,
    parse_json,
    reading,
    text_digest,
    verify,
    zip_members,
    zip_read,
    zip_stored,
)
from .hdf5 import read_h5
from .keras3 import Weights, canonical

KERAS_FORMAT_VERSION = "3.0.0"  # written to metadata.json: the format, not an installed Keras
NEEDS_ARCH = (
    "a weights-only file holds no architecture: pass it (--arch / arch= with a .keras, a "
    "legacy .h5 or a config .json)"
)


class NeedsArch(Refused):
    """A weights-only file without its architecture (and without this package's stamp)."""


@dataclass
class KerasFile:
    """A Keras model as read from a file.

    ``config``: the model's Keras config exactly as the file holds it. ``weights``: layer path
    (``name``; ``outer/inner`` inside nested models) -> {sub-path: arrays in index order}
    (Keras 3: ``""`` for the layer's own vars, ``"cell"``, ``"forward_layer/cell"``, ...;
    legacy .h5: ``""`` only, in weight_names order); layers without weights are absent.
    ``dialect``: ``"keras3"`` (.keras / .weights.h5), ``"keras3-h5"`` (legacy .h5 written by
    Keras 3), ``"keras2-h5"`` (Keras 2 .h5) or ``"keras2"`` (a .keras of Keras 2.13+).
    ``keras_version``: as the file says ("" if absent; "3" for a bare Keras 3 .weights.h5)."""

    config: dict
    weights: Weights
    dialect: str
    keras_version: str
    path: str = ""


def read_arch(arch: str | os.PathLike | dict) -> dict:
    """A model config from a .keras (its config.json), a legacy .h5 (model_config) or a
    config .json (``model.to_json()``); a dict is taken as the config itself."""
    if not isinstance(arch, (str, os.PathLike)):
        try:
            config_layers(arch)
        except ValueError as e:
            raise Refused(f"the architecture: {one_line(e)}") from None
        return arch
    path = check_file(arch)
    name = path.name.lower()
    with reading(path, "architecture file"):
        if name.endswith(".keras"):
            with open_zip(path, "a .keras file is a zip archive") as z:
                config = zip_config(z, zip_members(z))
        elif name.endswith(".json"):
            config = parse_json(path.read_bytes(), "the architecture")
        elif name.endswith((".h5", ".hdf5")):
            tree = read_h5(map_file(path))
            config = parse_json(tree.text("", "model_config", "the file"), "model_config")
        else:
            raise Refused("an architecture is a .keras, a legacy .h5 or a config .json")
        config_layers(config)
        return config


def zip_config(z: zipfile.ZipFile, members: dict) -> dict:
    if "config.json" not in members:
        raise Refused(f"no config.json inside (found {sorted(members)[:6]})")
    config = parse_json(zip_read(z, members["config.json"], MAX_JSON_BYTES), "config.json")
    config_layers(config)
    return config


def read_keras(path: str | os.PathLike, arch: str | os.PathLike | dict | None = None) -> KerasFile:
    """A Keras model file: ``.keras``, a legacy ``.h5`` (Keras 3's or Keras 2's
    ``model.save``), or a ``.weights.h5`` (Keras 3 ``save_weights``, or Keras 2's
    ``save_weights`` .h5) with ``arch`` giving its architecture (a .keras, a config .json,
    a legacy .h5, or the config dict itself) unless this package wrote it."""
    path = check_file(path)
    name = path.name.lower()
    arch_config = read_arch(arch) if arch is not None else None
    with reading(path, "Keras model file"):
        if name.endswith(".keras"):
            if arch_config is not None:
                raise Refused("a .keras file holds its own architecture; --arch is not needed")
            kf = read_keras_zip(path)
        elif name.endswith((".h5", ".hdf5")):
            kf = read_h5_file(path, arch_config)
        else:
            raise Refused("unknown Keras file type; expected .keras, .h5 or .weights.h5")
        kf.path = str(path)
        return kf


def read_keras_zip(path: Path) -> KerasFile:
    with open_zip(path, "a .keras file is a zip archive") as z:
        members = zip_members(z)
        config = zip_config(z, members)
        if "model.weights.h5" not in members:
            raise Refused(
                f"no model.weights.h5 inside (found {sorted(members)[:6]}); "
                "sharded or .npz weights are not supported"
            )
        meta = {}
        if "metadata.json" in members:
            meta = parse_json(zip_read(z, members["metadata.json"], MAX_JSON_BYTES), "metadata")
        info = members["model.weights.h5"]
        stored = zip_stored(path, info)  # (the archive mapped, where the member begins)
        buf, start = stored or (zip_read(z, info), 0)
    meta = meta if isinstance(meta, dict) else {}
    version = meta.get("keras_version") if isinstance(meta.get("keras_version"), str) else ""
    tree = read_h5(buf, start=start, size=info.file_size)
    weights = keras3.read_weights(tree, config)
    if STAMP in meta:  # written by this package: every array and the config checked
        stamp = meta[STAMP]
        if not isinstance(stamp, dict):
            raise Refused(f"metadata.json: a damaged {STAMP} entry")
        keras3.check_config(config, stamp.get("config_sha256"), "config.json")
        verify(tree.arrays, stamp.get("sha256"), "model.weights.h5")
    return KerasFile(config, weights, "keras2" if version.startswith("2.") else "keras3", version)


def read_h5_file(path: Path, arch: dict | None) -> KerasFile:
    tree = read_h5(map_file(path))
    if legacy_h5.is_legacy(tree):
        config, weights, dialect, version = legacy_h5.read_legacy(tree, arch)
        return KerasFile(config, weights, dialect, version)
    stamp = keras3.stamp_of(tree)
    if stamp is not None:
        if not isinstance(stamp.get("config"), dict):
            raise Refused(f"a {STAMP} stamp without its config (damaged file)")
        keras3.check_config(stamp["config"], stamp.get("config_sha256"), "the stamped config")
        verify(tree.arrays, stamp["sha256"], "the weights")
        config_layers(stamp["config"])
    config = arch if arch is not None else stamp and stamp["config"]
    if config is None:
        raise NeedsArch(NEEDS_ARCH)
    return KerasFile(config, keras3.read_weights(tree, config), "keras3", "3")


def write_keras(path: str | os.PathLike, config: dict, weights: Weights) -> None:
    """Write ``.keras`` (metadata.json, config.json, model.weights.h5, as Keras 3 does) or a
    Keras 3 ``.weights.h5``, atomically, stamped with the sha256 of every array and of the
    config (the ``.weights.h5`` stamp holds the config too). NaN/inf weights are refused."""
    path = Path(path)
    name = path.name.lower()
    try:
        config_layers(config)
        config_sum = text_digest(canonical(config))
        if name.endswith(".keras"):
            buf = io.BytesIO()
            sums = keras3.write_weights(buf, config, weights, {"config_sha256": config_sum})
            meta = {
                "keras_version": KERAS_FORMAT_VERSION,
                "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
                STAMP: {"config_sha256": config_sum, "sha256": sums},
            }
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
                z.writestr("metadata.json", json.dumps(meta))
                z.writestr("config.json", json.dumps(config))
                z.writestr("model.weights.h5", buf.getvalue())
        elif name.endswith(".weights.h5"):
            stamp = {"config": config, "config_sha256": config_sum}
            with atomic_path(path) as tmp:
                keras3.write_weights(tmp, config, weights, stamp)
        else:
            raise Refused("write a Keras model as .keras or .weights.h5")
    except ValueError as e:
        msg = one_line(e)
        raise Refused(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
