"""A Keras model config (Sequential or Functional, Keras 2 or 3) -> one chain of layers.

Only single chains are ported: every layer takes the previous layer's one output. Branches,
merges, shared layers, nested models and call arguments (initial_state, masks) are refused.
"""

from __future__ import annotations

MODEL_CLASSES = ("Sequential", "Functional", "Model")
ENTRY_KEYS = {
    "class_name",
    "config",
    "module",
    "registered_name",
    "name",
    "inbound_nodes",
    "build_config",
    "compile_config",
}


def _layer_name(entry: dict) -> str:
    cfg = entry.get("config")
    name = entry.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
    return str(name) if name is not None else "?"


def check_entry(entry) -> tuple[str, str, dict]:
    """(class, name, config) of one layer entry, refusing custom or nested layers."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(f"model config: a layer entry is not a Keras layer: {str(entry)[:80]}")
    cls, name, cfg = entry["class_name"], _layer_name(entry), entry.get("config", {})
    if not isinstance(cfg, dict):
        raise ValueError(f"{cls} {name!r}: its config is not a JSON object")
    if cls in MODEL_CLASSES:
        raise ValueError(
            f"{cls} {name!r}: nested models are not supported (flatten it into one chain)"
        )
    module, registered = entry.get("module"), entry.get("registered_name")
    if (module is not None and not str(module).startswith("keras")) or registered not in (
        None,
        cls,
    ):
        raise ValueError(
            f"{cls} {name!r}: custom layer (module={module!r}, registered_name={registered!r}) "
            "is not supported; only built-in Keras layers are ported"
        )
    return cls, name, cfg


def _sources(node) -> list[tuple[str, int]]:
    """(layer, tensor index) of every tensor a call node consumes, Keras 2 or Keras 3."""
    if isinstance(node, dict) and "args" in node:  # Keras 3: {"args": [...], "kwargs": {...}}
        found: list[tuple[str, int]] = []

        def walk(v) -> None:
            if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
                hist = v.get("config", {}).get("keras_history", [None, 0, 0])
                found.append((str(hist[0]), int(hist[2])))
            elif isinstance(v, dict):
                for w in v.values():
                    walk(w)
            elif isinstance(v, list):
                for w in v:
                    walk(w)

        walk(node.get("args"))
        walk(node.get("kwargs"))
        return found
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        return [(str(t[0]), int(t[2])) for t in node if isinstance(t, list) and len(t) >= 3]
    raise ValueError(f"model config: unreadable inbound node {str(node)[:80]}")


def _call_kwargs(node) -> dict:
    if isinstance(node, dict):
        return node.get("kwargs") or {}
    kwargs: dict = {}
    for t in node:
        if isinstance(t, list) and len(t) >= 4 and isinstance(t[3], dict):
            kwargs.update(t[3])
    return kwargs


def _as_refs(value) -> list[tuple[str, int]]:
    """input_layers / output_layers: ["name", 0, 0] or [["name", 0, 0], ...]."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]
    return [(str(v[0]), int(v[2])) for v in value or []]


def model_layers(config) -> list[dict]:
    """The layer entries of a model config, in call order, checked to be one chain."""
    if not isinstance(config, dict) or config.get("class_name") not in MODEL_CLASSES:
        cls = config.get("class_name") if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f"model config: class {cls!r} is not supported (Sequential or Functional models)"
        )
    cfg = config.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")  # old Keras 2: a list
    if not isinstance(layers, list) or not layers:
        raise ValueError("model config: no layers")
    for e in layers:
        check_entry(e)
    if config["class_name"] == "Sequential":
        return layers
    return _functional_chain(cfg, layers)


def _functional_chain(cfg: dict, layers: list[dict]) -> list[dict]:
    by_name = {_layer_name(e): e for e in layers}
    if len(by_name) != len(layers):
        raise ValueError("model config: two layers share a name")
    inputs, outputs = _as_refs(cfg.get("input_layers")), _as_refs(cfg.get("output_layers"))
    if len(inputs) != 1:
        raise ValueError(f"Functional model: {len(inputs)} inputs; only one input is supported")
    consumers: dict[str, list[str]] = {}
    for e in layers:
        cls, name = e["class_name"], _layer_name(e)
        nodes = e.get("inbound_nodes") or []
        if cls == "InputLayer":
            continue
        if len(nodes) != 1:
            raise ValueError(
                f"{cls} {name!r}: called {len(nodes)} times; shared layers are not supported"
            )
        src = _sources(nodes[0])
        if len(src) != 1 or src[0][1] != 0:
            raise ValueError(
                f"{cls} {name!r}: takes inputs {[s[0] for s in src]}; only a single chain of "
                "layers (each taking the previous layer's one output) is supported"
            )
        kwargs = {k: v for k, v in _call_kwargs(nodes[0]).items() if v is not None}
        kwargs.pop("training", None)
        if kwargs:
            raise ValueError(
                f"{cls} {name!r}: called with {sorted(kwargs)}; call arguments such as "
                "initial_state or mask are not supported"
            )
        consumers.setdefault(src[0][0], []).append(name)
    chain = [inputs[0][0]]
    while chain[-1] in consumers:
        nxt = consumers[chain[-1]]
        if len(nxt) != 1:
            cls = by_name.get(chain[-1], {}).get("class_name", "layer")
            fed = ", ".join(f"{by_name[n]['class_name']} {n!r}" for n in nxt)
            raise ValueError(
                f"{cls} {chain[-1]!r}: its output feeds {fed}; branching graphs are not "
                "supported (only a single chain of layers)"
            )
        chain.append(nxt[0])
    last = {name for name, _ in outputs}
    if last != {chain[-1]} or len(chain) != len(layers):
        off = [n for n in by_name if n not in chain] or sorted(last)
        e = by_name.get(off[0], {"class_name": "layer"})
        raise ValueError(
            f"{e['class_name']} {off[0]!r}: not on the chain from {chain[0]!r} to the output "
            f"{sorted(last)}; only a single chain of layers is supported"
        )
    if chain[0] not in by_name or by_name[chain[0]]["class_name"] != "InputLayer":
        raise ValueError(f"Functional model: input {chain[0]!r} is not an InputLayer")
    return [by_name[n] for n in chain]
