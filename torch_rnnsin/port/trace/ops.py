"""torch functions and tensor methods -> Keras layers, or layout bookkeeping only.

out, (h, c) = lstm(x)          tuple unpacking (getitem on Python values)
h[-1], h[-2:], h.squeeze(0)    picking layers out of a state stack
out[:, -1]                     a forward layer's last output (Cropping1D + Flatten else)
permute / transpose / .t()     only the axis bookkeeping (a Keras Permute when consumed)
torch.cat                      Concatenate;  + - * with tensors: Add / Subtract / Multiply
x * c, x + c, x / c            Rescaling;    tanh, relu, softmax, dropout, ...: as modules
torch.zeros(...)               a zero initial state (the same as none)
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F

from .kgraph import KT, Graph, Opaque, Stack, Zeros
from .modules import activation

FUNCTION_ACTIVATIONS = {
    torch.tanh: "tanh",
    torch.relu: "relu",
    torch.sigmoid: "sigmoid",
    F.relu: "relu",
    F.tanh: "tanh",
    F.sigmoid: "sigmoid",
    F.silu: "silu",
    F.selu: "selu",
    F.softsign: "softsign",
}
METHOD_ACTIVATIONS = {"tanh": "tanh", "relu": "relu", "sigmoid": "sigmoid"}
SAME = {"contiguous", "detach", "clone", "float", "to", "cpu"}
ZEROS = {torch.zeros, torch.zeros_like}
BINARY = {
    operator.add: "Add",
    torch.add: "Add",
    operator.sub: "Subtract",
    torch.sub: "Subtract",
    operator.mul: "Multiply",
    torch.mul: "Multiply",
}


def fn_name(target) -> str:
    if isinstance(target, str):
        return f"Tensor.{target}"
    mod = getattr(target, "__module__", None) or ""
    mod = {"_operator": "operator", "torch._C._nn": "F", "torch.nn.functional": "F"}.get(mod, mod)
    return f"{mod}.{getattr(target, '__name__', target)}".lstrip(".")


def _axis_index(n: int, idx) -> list:
    """A torch index -> one entry per axis (Ellipsis expanded, missing axes full)."""
    idx = list(idx) if isinstance(idx, tuple) else [idx]
    if Ellipsis in idx:
        k = idx.index(Ellipsis)
        idx = idx[:k] + [slice(None)] * (n - len(idx) + 1) + idx[k + 1 :]
    return idx + [slice(None)] * (n - len(idx))


def getitem(g: Graph, x, idx, real):
    if isinstance(x, (tuple, list)):
        return x[idx]
    if isinstance(x, Stack):
        if isinstance(idx, int):
            return x.items[idx]
        if isinstance(idx, slice):
            return Stack(x.items[idx])
    if isinstance(x, Opaque):
        return Opaque(None)
    if not isinstance(x, KT):
        raise g.refuse(f"indexing {type(x).__name__} with {idx!r} is not supported")
    axes = _axis_index(len(x.perm), idx)
    picked = [i for i, a in enumerate(axes) if a != slice(None)]
    if len(picked) != 1 or not isinstance(axes[picked[0]], int) or len(x.perm) != 3:
        raise g.refuse(
            f"indexing {idx!r}: only one time step of a (B, T, H) tensor, e.g. out[:, -1]"
        )
    i = picked[0]
    if x.perm[i] != 1:
        raise g.refuse(f"indexing {idx!r}: only the time axis may be indexed")
    T, t = x.kshape[1], axes[i] % x.kshape[1]
    rest = tuple(p - (p > 1) for p in x.perm if p != 1)  # the time axis removed
    if x.what == "seq" and not x.layer.bidirectional and t == T - 1:
        return KT(x.layer, "last", (x.kshape[0], x.kshape[2]), rest, x.dtype)
    g.static_time = True  # a fixed time step: the Keras model takes this length only
    crop = g.one(
        "Cropping1D",
        "cropping1d",
        {"cropping": [t, T - 1 - t]},
        x,
        (x.kshape[0], 1, x.kshape[2]),
        x.perm,
    )
    return g.one("Flatten", "flatten", {}, crop, (x.kshape[0], x.kshape[2]), rest)


def permute(g: Graph, x, dims) -> KT:
    if not isinstance(x, KT):
        raise g.refuse(f"permute of {type(x).__name__} is not supported")
    n = len(x.perm)
    dims = [d % n for d in dims]
    return KT(x.layer, x.what, x.kshape, tuple(x.perm[d] for d in dims), x.dtype)


def transpose(g: Graph, x, a: int, b: int) -> KT:
    n = len(x.perm) if isinstance(x, KT) else 0
    dims = list(range(n))
    dims[a % n], dims[b % n] = dims[b % n], dims[a % n]
    return permute(g, x, dims)


def squeeze(g: Graph, x, dim=None):
    if isinstance(x, Stack) and len(x.items) == 1 and dim in (0, None):
        return x.items[0]
    raise g.refuse("squeeze: only a one-layer state stack, h.squeeze(0), is supported")


def unsqueeze(g: Graph, x, dim):
    if isinstance(x, KT) and dim == 0 and x.perm[0] == 0:
        return Stack((x,))
    raise g.refuse("unsqueeze: only a (B, H) state made a one-layer stack, h.unsqueeze(0)")


def cat(g: Graph, xs, dim=0):
    xs = list(xs)
    if all(isinstance(x, Stack) for x in xs) and dim == 0:
        return Stack(tuple(i for x in xs for i in x.items))
    if not all(isinstance(x, KT) for x in xs):
        raise g.refuse("torch.cat of values that are not all tensors (or all state stacks)")
    first = xs[0]
    xs = [first] + [g.layout(x, first.perm, "torch.cat") for x in xs[1:]]
    axis = first.perm[dim % len(first.perm)]
    if axis == 0:
        raise g.refuse("torch.cat along the batch axis is not supported")
    kshape = list(first.kshape)
    kshape[axis] = sum(x.kshape[axis] for x in xs)
    layer = g.add("Concatenate", "concatenate", {"axis": axis}, [xs])
    return KT(layer, 0, tuple(kshape), first.perm, first.dtype)


def binary(g: Graph, fn, a, b, real):
    name = BINARY.get(fn, "")
    if isinstance(a, KT) and isinstance(b, KT):
        b = g.layout(b, a.perm, fn_name(fn))
        if a.kshape != b.kshape:
            raise g.refuse(f"{fn_name(fn)} of tensors of shapes {a.tshape} and {b.tshape}")
        layer = g.add(name, name.lower(), {}, [[a, b]])
        return KT(layer, 0, a.kshape, a.perm, a.dtype)
    x, c = (a, b) if isinstance(a, KT) else (b, a)
    if not isinstance(x, KT) or not isinstance(c, (int, float)) or isinstance(c, bool):
        raise g.refuse(f"{fn_name(fn)} of {type(a).__name__} and {type(b).__name__}")
    if fn in (operator.truediv, torch.div) and x is a:
        scale, offset = 1.0 / c, 0.0
    elif name == "Multiply":
        scale, offset = float(c), 0.0
    elif name == "Add":
        scale, offset = 1.0, float(c)
    elif name == "Subtract":
        scale, offset = (1.0, -float(c)) if x is a else (-1.0, float(c))
    else:
        raise g.refuse(f"{fn_name(fn)} with a constant is not supported")
    return g.one("Rescaling", "rescaling", {"scale": scale, "offset": offset}, x, x.kshape, x.perm)


def softmax(g: Graph, x, dim) -> KT:
    if isinstance(x, KT) and x.perm[dim % len(x.perm)] == len(x.perm) - 1:
        return activation(g, "softmax", "softmax", x)
    raise g.refuse(f"softmax over dim={dim}: only Keras's last axis is supported")


def dropout(g: Graph, x, p=0.5, training=False, inplace=False):
    if not isinstance(x, KT) or p == 0:
        return x
    return g.one("Dropout", "dropout", {"rate": float(p)}, x, x.kshape, x.perm)


def call_function(g: Graph, fn, args: list, kwargs: dict, real):
    if fn is operator.getitem:
        return getitem(g, args[0], args[1], real)
    if fn in FUNCTION_ACTIVATIONS and not kwargs:
        return activation(g, FUNCTION_ACTIVATIONS[fn], FUNCTION_ACTIVATIONS[fn], args[0])
    if fn in (torch.cat, torch.concat):
        return cat(g, *args, **kwargs)
    if fn in (torch.permute,):
        return permute(g, args[0], args[1])
    if fn in (torch.transpose,):
        return transpose(g, *args)
    if fn in (torch.squeeze,):
        return squeeze(g, *args)
    if fn in ZEROS:
        return Zeros()
    if fn in (F.softmax, torch.softmax):
        return softmax(g, args[0], kwargs.get("dim", args[1] if len(args) > 1 else None))
    if fn is F.dropout:
        return dropout(g, *args, **kwargs)
    if fn in BINARY or fn in (operator.truediv, torch.div):
        return binary(g, fn, args[0], args[1], real)
    if fn is getattr and isinstance(args[0], (KT, Stack, Opaque)):
        return Opaque(None)
    if getattr(fn, "__name__", "") == "_assert_is_none":  # fx's check of a None argument
        return None
    raise g.refuse(f"{fn_name(fn)} is not supported (no built-in Keras layer for it here)")


def call_method(g: Graph, name: str, args: list, kwargs: dict, real):
    x, rest = args[0], args[1:]
    if name in SAME and (not rest or name != "float"):
        return x
    if name in ("size", "dim") or (name == "new_zeros"):
        return Zeros() if name == "new_zeros" else Opaque(None)
    if name in METHOD_ACTIVATIONS and not rest:
        return activation(g, name, METHOD_ACTIVATIONS[name], x)
    if name == "permute":
        return permute(
            g, x, rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        )
    if name == "transpose":
        return transpose(g, x, *rest)
    if name == "t" and isinstance(x, KT) and len(x.perm) == 2:
        return transpose(g, x, 0, 1)
    if name == "squeeze":
        return squeeze(g, x, *rest)
    if name == "unsqueeze":
        return unsqueeze(g, x, *rest)
    if name == "softmax":
        return softmax(g, x, kwargs.get("dim", rest[0] if rest else None))
    if name == "flatten" and isinstance(x, KT) and len(x.perm) == 2 and rest in ([], [1]):
        return x
    if name in ("add", "sub", "mul", "div"):
        fn = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[name]
        return binary(g, fn, x, rest[0], real)
    if isinstance(x, KT) and name in ("reshape", "view") and tuple(real.shape) == x.tshape:
        return x
    raise g.refuse(f"Tensor.{name} is not supported (no built-in Keras layer for it here)")


__all__ = ["call_function", "call_method"]
