"""Legacy ``.h5`` (Keras 2 / tf.keras ``model.save`` and ``save_weights``, and Keras 3's legacy
``.h5``): read from an H5Tree by following the ``layer_names`` / ``weight_names`` attributes as
written. A layer's weights are ``{"": arrays}`` in weight_names order (``get_weights()``'s);
a nested model is one entry of layer_names, its arrays split to its inner layers by name.
"""

from __future__ import annotations

from ...common.errors import Refused
from .config import config_layers, is_model, layer_name
from .guards import parse_json
from .hdf5 import H5Tree, join
from .keras3 import Weights


def is_legacy(tree: H5Tree) -> bool:
    """A whole legacy model (``model_weights``), or a Keras 2 weights file (``layer_names``)."""
    root = tree.groups.get("", {})
    return "model_weights" in root.get("children", ()) or any(
        k in root.get("attrs", {}) for k in ("layer_names", "layer_names0")
    )


def read_legacy(tree: H5Tree, arch: dict | None) -> tuple[dict, Weights, str, str]:
    """(config, weights, dialect, keras_version); ``arch`` for a weights-only file."""
    whole = "model_weights" in tree.children("", "the file")
    if whole and arch is not None:
        raise Refused("this .h5 holds its own architecture; --arch is not needed")
    if not whole and arch is None:
        raise Refused(
            "a weights-only file: the architecture is needed too "
            "(--arch / arch= with a .keras, a legacy .h5 or a config .json)"
        )
    version = (
        tree.text("", "keras_version", "the file") if tree.has_attr("", "keras_version") else ""
    )
    config = (
        parse_json(tree.text("", "model_config", "the file"), "model_config") if whole else arch
    )
    layers = {layer_name(layer): layer for layer in config_layers(config)}
    root = "model_weights" if whole else ""
    weights: Weights = {}
    for name in tree.strings(root, "layer_names", "the weights"):
        g = join(root, name)
        names = tree.strings(g, "weight_names", name)
        arrays = [tree.array(join(g, wn), missing(tree, g, wn)) for wn in names]
        if not arrays:
            continue
        if name not in layers:
            raise Refused(f"weights for layer {name!r}, which the architecture does not have")
        if is_model(layers[name]):
            split_nested(layers[name], name, list(zip(names, arrays, strict=True)), weights)
        else:
            weights[name] = {"": arrays}
    dialect = "keras3-h5" if version.startswith("3.") else "keras2-h5"
    return config, weights, dialect, version


def missing(tree: H5Tree, group: str, wn: str) -> str:
    """What a weight_names entry lacks, for the refusal: its first part not in the file."""
    path = group
    for part in wn.split("/"):
        path = join(path, part)
        if path not in tree.groups and path not in tree.arrays:
            return f"{group}: no {part!r} (weight_names entry {wn!r})"
    return f"{group}: {wn!r}"


def split_nested(model: dict, path: str, named: list, weights: Weights) -> None:
    """A nested model's arrays to its layers: weight names are ``[model/]layer/...`` (Keras 3:
    ``inner/lstm/lstm_cell/kernel``; Keras 2: ``lstm/lstm_cell/kernel:0``, and deeper models'
    layers by their own name only)."""
    inner = {layer_name(layer): layer for layer in config_layers(model)}
    groups: dict[str, list] = {}
    for wn, a in named:
        parts = wn.split("/")
        if len(parts) > 2 and parts[0] == layer_name(model) and parts[1] in inner:
            parts = parts[1:]
        owner = parts[0] if parts[0] in inner else owner_of(model, parts[0])
        if owner is None:
            raise Refused(f"{path}: weight {wn!r} belongs to none of the nested model's layers")
        groups.setdefault(owner, []).append(("/".join(parts), a))
    for owner, items in groups.items():
        if is_model(inner[owner]):
            split_nested(inner[owner], f"{path}/{owner}", items, weights)
        else:
            weights[f"{path}/{owner}"] = {"": [a for _, a in items]}


def owner_of(model: dict, name: str) -> str | None:
    """The direct layer of ``model`` (a nested model) that holds a layer called ``name``."""
    found = [
        layer_name(layer)
        for layer in config_layers(model)
        if is_model(layer)
        and (
            name in {layer_name(x) for x in config_layers(layer)}
            or owner_of(layer, name) is not None
        )
    ]
    return found[0] if len(found) == 1 else None
