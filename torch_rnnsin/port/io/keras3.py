"""Keras 3 weights (``.weights.h5``, and ``model.weights.h5`` inside a ``.keras``): read from an
H5Tree, written with h5py.

Where Keras 3 keeps a layer's arrays (the user's layer names exist only in the config):
``layers/<snake class>[_k]/vars/0..`` for the layer's own, ``.../<sub>/vars/0..`` for its
sub-objects (``cell``, ``forward_layer/cell``, ``layer``, ``query_dense``, ...), and a nested
model's layers below ``.../layers/``. A layer's weights are ``{sub-path: arrays}``, ``""`` for
its own; sub-paths are found by walking the group, with no table of layer classes.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ...common.errors import Refused
from .config import is_model, keras3_paths, layer_name, layer_paths
from .guards import STAMP, as_real_array, check_finite, digest, text_digest
from .hdf5 import H5Tree, join

Weights = dict[str, dict[str, list[np.ndarray]]]


def canonical(config: dict) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def read_weights(tree: H5Tree, config: dict) -> Weights:
    """Keras 3 weights matched to the config's layers by Keras's own naming; arrays in the
    file that no layer claims mean a mismatched architecture."""
    if "layers" not in tree.children("", "the weights file"):
        raise Refused("no 'layers' group: not a Keras 3 weights file")
    if not tree.is_group("layers"):
        raise Refused("'layers' is a dataset, not a group: not a Keras 3 weights file")
    weights: Weights = {}
    read_model(tree, "layers", config, "", weights)
    return weights


def read_model(tree: H5Tree, group: str, config: dict, prefix: str, weights: Weights) -> None:
    children = tree.children(group, group) if tree.is_group(group) else []
    claimed = set()
    for layer, base in keras3_paths(config):
        claimed.add(base)
        if base not in children:
            continue
        path, g = prefix + layer_name(layer), join(group, base)
        nested = is_model(layer)
        own = layer_vars(tree, g, "", skip="layers" if nested else None)
        if own:
            weights[path] = own
        if nested:
            read_model(tree, join(g, "layers"), layer, path + "/", weights)
    for base in sorted(set(children) - claimed):
        if layer_vars(tree, join(group, base), ""):
            raise Refused(
                f"holds weights at {group}/{base}, which no layer of the architecture has "
                "(does the architecture match?)"
            )


def layer_vars(tree: H5Tree, group: str, sub: str, skip: str | None = None) -> dict:
    """{sub-path: arrays} of one saved object: its own vars/0..n-1, then its children's."""
    out: dict[str, list[np.ndarray]] = {}
    for name in tree.children(group, group):
        path = join(group, name)
        if name == skip:
            continue
        if name == "vars":
            keys = tree.children(path, path)
            if set(keys) != {str(i) for i in range(len(keys))}:
                raise Refused(
                    f"{path}: keys {sorted(keys)[:6]} are not all numbers 0..{len(keys) - 1}"
                )
            arrays = [tree.array(join(path, str(i)), path) for i in range(len(keys))]
            if arrays:
                out[sub] = arrays
        elif tree.is_group(path):
            out.update(layer_vars(tree, path, join(sub, name)))
        else:
            raise Refused(f"{path}: a dataset where Keras keeps a group")
    return out


def stamp_of(tree: H5Tree) -> dict | None:
    """This package's stamp on a weights file it wrote (None: not ours, or Keras's own)."""
    if not tree.has_attr("", STAMP):
        return None
    stamp = json.loads(tree.text("", STAMP, "the file"))
    if not isinstance(stamp, dict) or not isinstance(stamp.get("sha256"), dict):
        raise Refused(f"a damaged {STAMP} stamp")
    return stamp


def check_config(config: dict, want: object, what: str) -> None:
    if text_digest(canonical(config)) != want:
        raise Refused(f"{what} does not match its checksum (damaged file)")


# --- writing ---------------------------------------------------------------------------------


def valid_sub(sub: object, where: str) -> str:
    parts = sub.split("/") if isinstance(sub, str) else None
    if sub != "" and (
        parts is None or any(p in ("", ".", "..", "vars", "layers") or p.isdigit() for p in parts)
    ):
        raise Refused(f"{where}: sub-path {sub!r} is not a group path such as 'cell'")
    return sub


def checked(weights: Weights, config: dict) -> Weights:
    """The weights as native real arrays, finite, every layer path in the config."""
    paths = set(layer_paths(config))
    extra = sorted(set(weights) - paths)
    if extra:
        raise Refused(f"weights for {extra[:4]}, which the config's layers do not include")
    out: Weights = {}
    for path, subs in weights.items():
        if not isinstance(subs, dict):
            raise Refused(f"layer {path!r}: expected {{sub-path: [arrays]}}")
        out[path] = {}
        for sub, arrays in subs.items():
            valid_sub(sub, f"layer {path!r}")
            out[path][sub] = []
            for i, a in enumerate(arrays):
                what = f"layer {path!r} array {join(sub, 'vars')}/{i}"
                a = as_real_array(a, what)
                check_finite(a, what)
                out[path][sub].append(a)
    return out


def write_weights(target, config: dict, weights: Weights, stamp: dict) -> dict[str, str]:
    """The Keras 3 layout into ``target`` (a path or a BytesIO), with ``stamp`` (plus every
    dataset's sha256) as the root attribute STAMP; returns the sha256 table."""
    weights = checked(weights, config)
    sums: dict[str, str] = {}
    with h5py.File(target, "w") as h5:
        write_model(h5, "layers", config, "", weights, sums)
        h5.create_group("vars").attrs["name"] = str(config["config"].get("name", "model"))
        h5.attrs[STAMP] = json.dumps({**stamp, "sha256": sums})
    return sums


def write_model(h5, group: str, config: dict, prefix: str, weights: Weights, sums: dict) -> None:
    for layer, base in keras3_paths(config):
        path, g = prefix + layer_name(layer), f"{group}/{base}"
        subs = weights.get(path, {})
        h5.create_group(f"{g}/vars").attrs["name"] = layer_name(layer)
        for sub, arrays in subs.items():
            vg = h5.require_group(join(join(g, sub), "vars"))
            vg.attrs["name"] = sub.rsplit("/", 1)[-1] or layer_name(layer)
            for i, a in enumerate(arrays):
                vg.create_dataset(str(i), data=a)
                sums[f"{vg.name[1:]}/{i}"] = digest(a)
        if is_model(layer):
            h5.require_group(f"{g}/layers")
            write_model(h5, f"{g}/layers", layer, path + "/", weights, sums)


def stamp_weights_file(h5: h5py.File, config: dict) -> None:
    """Stamp a Keras 3 weights file written elsewhere (the lesson's): its config and the
    sha256 of every dataset, so that it reads without an architecture and is checked."""
    sums: dict[str, str] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            sums[name] = digest(as_real_array(obj[()], name))

    h5.visititems(visit)
    h5.attrs[STAMP] = json.dumps(
        {"config": config, "config_sha256": text_digest(canonical(config)), "sha256": sums}
    )
