"""The shape of a Keras model config, as far as the files need it: its layers, nested models,
and where Keras 3 keeps each layer's arrays (``layers/<snake class>[_k]``)."""

from __future__ import annotations

import re

from ...common.errors import Refused

MODEL_CLASSES = ("Sequential", "Functional", "Model")


def to_snake_case(name: str) -> str:
    """Keras's own naming of a class (``SimpleRNN`` -> ``simple_rnn``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layer_name(layer: dict) -> str:
    return layer["config"]["name"]


def is_layer_config(layer: object) -> bool:
    """``{"class_name": str, "config": {"name": str, ...}, ...}``"""
    return (
        isinstance(layer, dict)
        and isinstance(layer.get("class_name"), str)
        and isinstance(layer.get("config"), dict)
        and isinstance(layer["config"].get("name"), str)
    )


def is_model(layer: dict) -> bool:
    """A nested Sequential / Functional model (a layer config holding layers)."""
    return layer["class_name"] in MODEL_CLASSES and isinstance(layer["config"].get("layers"), list)


def config_layers(config: object, depth: int = 0) -> list[dict]:
    """The model config's layer entries, after checking the shape of the whole config (nested
    models included): ``{"class_name": "Sequential" | "Functional" | "Model", "config":
    {"layers": [...]}}``, each layer ``{"class_name": str, "config": {"name": str}}``,
    names unique within their model."""
    if not isinstance(config, dict):
        raise Refused(f"the model config is a JSON {type(config).__name__}, not an object")
    cls = config.get("class_name")
    if not isinstance(cls, str) or not isinstance(config.get("config"), dict):
        raise Refused("the model config needs 'class_name' (a string) and 'config' (an object)")
    if cls not in MODEL_CLASSES:
        raise Refused(f"model class {cls!r}: only {', '.join(MODEL_CLASSES)} models")
    if depth > 32:
        raise Refused("models nested more than 32 deep")
    layers = config["config"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise Refused("the model config has no 'layers' list")
    names: set[str] = set()
    for i, layer in enumerate(layers):
        if not is_layer_config(layer):
            raise Refused(
                f"layer {i} of the config: expected {{'class_name': str, 'config': {{'name': str}}}}"
            )
        if layer_name(layer) in names:
            raise Refused(f"layer name {layer_name(layer)!r} appears twice in the config")
        if "/" in layer_name(layer):
            raise Refused(f"layer name {layer_name(layer)!r}: a '/' in a layer name")
        names.add(layer_name(layer))
        if is_model(layer):
            config_layers(layer, depth + 1)
    return layers


def keras3_paths(config: dict) -> list[tuple[dict, str]]:
    """(layer, group name below ``layers/``) for each layer Keras 3 saves, in its order.

    Keras 3 walks ``model.layers`` (a Sequential's leaves out its leading InputLayer) and
    names each ``snake_case(class)``, then ``_1``, ``_2``, ... for the next of that name."""
    layers = config_layers(config)
    if config["class_name"] == "Sequential" and layers[0]["class_name"] == "InputLayer":
        layers = layers[1:]
    used: dict[str, int] = {}
    out = []
    for layer in layers:
        base = to_snake_case(layer["class_name"])
        k = used.get(base, -1) + 1
        used[base] = k
        out.append((layer, base if k == 0 else f"{base}_{k}"))
    return out


def layer_paths(config: dict, prefix: str = "") -> list[str]:
    """Every layer's path: ``name``, and ``outer/inner`` inside nested models."""
    out = []
    for layer in config_layers(config):
        out.append(prefix + layer_name(layer))
        if is_model(layer):
            out += layer_paths(layer, f"{prefix}{layer_name(layer)}/")
    return out
