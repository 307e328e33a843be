"""Weight tables: for every torch tensor, the Keras array it comes from and how.

A layer kind's table is a list of ``Row``s. The same table drives Keras -> torch, torch -> Keras
and the ``inspect`` listing; every array's shape is checked before anything is copied.

    Row("kernel", "weight_ih_l0", transpose=True, gates="zrh->rzn")
        Keras kernel (F, 3H), its column blocks z, r, h  ->  torch weight_ih_l0 (3H, F), rows r, z, n
    Row("bias", "bias_ih_l0", part=0)      row 0 of a stacked Keras array (GRU bias (2, 3H))
    Row("bias", "bias_hh_l0", zero=True)   torch-only, kept at 0 and frozen; added back on the way out
    Row("kernel", "weight", perm=(2, 1, 0))  any axis permutation (convolutions: Keras (K, I, O) -> (O, I, K))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..common.errors import Refused


@dataclass(frozen=True)
class Row:
    """One torch tensor and where it lives in Keras."""

    keras: str  # Keras array name, in Keras's get_weights() order of first appearance
    torch: str  # torch parameter or buffer name (dotted for a sub-module)
    transpose: bool = False  # 2-D transpose (Keras (In, Out) -> torch (Out, In))
    gates: str = ""  # Keras -> torch gate blocks along torch's rows, e.g. "zrh->rzn"
    part: int | None = None  # row of a stacked Keras array (GRU reset_after bias (2, 3H))
    flat: bool = False  # with part: the Keras array is the parts concatenated (cuDNN's (8H,))
    zero: bool = False  # torch-only: kept at 0, frozen, added back into the Keras array
    perm: tuple[int, ...] | None = (
        None  # Keras -> torch axis permutation (torch = keras.transpose(perm))
    )
    shape: tuple[int, ...] | None = (
        None  # torch shape when it differs from the permuted Keras shape
    )


@dataclass(frozen=True)
class Part:
    """A torch module and its table, stored in Keras under ``sub`` (Keras 3: the group path
    inside the layer, without ``vars``: "" for the layer's own, "cell", "forward_layer/cell")."""

    sub: str
    module: nn.Module
    rows: tuple[Row, ...]

    @property
    def names(self) -> list[str]:
        return keras_names(self.rows)


def keras_names(rows) -> list[str]:
    return list(dict.fromkeys(r.keras for r in rows if not r.zero))


def _tensor(module, name: str) -> torch.Tensor:
    """A parameter or buffer by its (dotted) name."""
    for part in name.split("."):
        module = getattr(module, part)
    return module


def reorder(a: np.ndarray, gates: str, inverse: bool = False) -> np.ndarray:
    """Permute the gate blocks along axis 0 (torch's rows)."""
    if not gates:
        return a
    src, dst = gates.replace("n", "h").split("->")  # torch's candidate n is Keras's h
    if inverse:
        src, dst = dst, src
    blocks = np.split(a, len(src), axis=0)
    return np.concatenate([blocks[src.index(g)] for g in dst], axis=0)


def _to_torch_layout(a: np.ndarray, r: Row) -> np.ndarray:
    if r.transpose:
        a = a.T
    if r.perm is not None:
        a = a.transpose(r.perm)
    return reorder(a, r.gates)


def keras_shapes(module: nn.Module, rows) -> dict[str, tuple[int, ...]]:
    """The Keras shape of each array the table expects, from the torch tensors."""
    shapes: dict[str, tuple[int, ...]] = {}
    parts: dict[str, int] = {}
    for r in rows:
        if r.zero:
            continue
        shape = tuple(_tensor(module, r.torch).shape)
        if r.shape is not None:
            shape = r.shape
        if r.perm is not None:
            inv = np.argsort(r.perm)
            shape = tuple(shape[i] for i in inv)
        shapes[r.keras] = shape[::-1] if r.transpose else shape
        if r.part is not None:
            parts[r.keras] = max(parts.get(r.keras, 0), r.part + 1)
    flat = {r.keras for r in rows if r.flat}
    return {
        k: (((parts[k] * s[0], *s[1:]) if k in flat else (parts[k], *s)) if k in parts else s)
        for k, s in shapes.items()
    }


def as_float32(where: str, a, finite: bool = True) -> np.ndarray:
    """A real array as float32 (no copy when it already is one), finite unless ``finite=False``
    (the caller checks that later)."""
    src = np.asarray(a)
    if src.dtype.kind not in "fiu":
        raise Refused(f"{where}: expected real numbers, got dtype {src.dtype}")
    a = src
    if a.dtype != np.float32:
        with np.errstate(over="ignore", invalid="ignore"):
            a = a.astype(np.float32)
    # a finite sum means every value is finite (NaN and inf propagate through additions); only
    # when it is not (or overflows) the values are looked at one by one
    if finite and not np.isfinite(a.sum()) and not np.isfinite(a).all():
        bad = src[~np.isfinite(a)].ravel()[:3].tolist()
        raise Refused(f"{where}: values must be finite float32 numbers, got {bad}")
    return a


def _count(rows, keras: str) -> int:
    return 1 + max(r.part for r in rows if r.keras == keras and r.part is not None)


def _part_shape(shape: tuple, r: Row, rows) -> tuple:
    """The shape of one part of a stacked (or, flat, concatenated) Keras array."""
    if r.part is None:
        return shape
    if r.flat:
        return (shape[0] // _count(rows, r.keras), *shape[1:])
    return shape[1:]


def check_arrays(part: Part, arrays, where: str, finite: bool = True) -> dict[str, np.ndarray]:
    """Count, dtype, shape and (unless ``finite=False``) finiteness of a part's Keras arrays,
    before anything is copied."""
    names = part.names
    if len(arrays) != len(names):
        raise Refused(
            f"{where}: expected {len(names)} arrays ({', '.join(names)}), got {len(arrays)}"
        )
    shapes = keras_shapes(part.module, part.rows)
    out = {}
    for name, a in zip(names, arrays, strict=True):
        a = as_float32(f"{where} {name}", a, finite)
        if a.shape != shapes[name]:
            raise Refused(f"{where} {name}: expected shape {shapes[name]}, got {a.shape}")
        out[name] = a
    return out


def keras_to_torch(
    part: Part, arrays, where: str, copied: Callable[[np.ndarray], None] | None = None
) -> None:
    """Copy Keras arrays (get_weights() order) into the part's tensors: every count, dtype and
    shape first, then each array checked finite just before it is copied (read from memory
    once, not once for the check and again for the copy). ``copied(array)`` is called as
    each of ``arrays`` has gone into torch (the reader hands its pages back)."""
    by_name = check_arrays(part, arrays, where, finite=False)
    given = dict(zip(part.names, arrays, strict=True))
    last = {r.keras: i for i, r in enumerate(part.rows) if not r.zero}
    finite: set[str] = set()
    with torch.no_grad():
        for i, r in enumerate(part.rows):
            p = _tensor(part.module, r.torch)
            if r.zero:
                p.zero_()
                p.requires_grad_(False)
                continue
            a = by_name[r.keras]
            if r.keras not in finite:  # the file's values named, not their float32 overflow
                as_float32(f"{where} {r.keras}", given[r.keras])
                finite.add(r.keras)
            if r.part is not None:
                a = np.split(a, _count(part.rows, r.keras))[r.part] if r.flat else a[r.part]
            if not a.flags.aligned:  # read in place from an odd offset: torch wants it aligned
                a = a.copy()
            t = torch.from_numpy(_to_torch_layout(a, r))
            p.copy_(t.reshape(p.shape))  # torch's copy_ transposes on the fly
            if copied is not None and last[r.keras] == i:
                copied(given[r.keras])


def torch_to_keras(part: Part) -> list[np.ndarray]:
    """The part's tensors as Keras arrays (frozen zero biases added back in)."""
    out: dict[str, np.ndarray] = {}
    stacked: dict[str, dict[int, np.ndarray]] = {}
    shapes = keras_shapes(part.module, part.rows)
    for r in part.rows:
        a = _tensor(part.module, r.torch).detach().cpu().numpy().astype(np.float32)
        if r.zero:
            continue
        a = reorder(a, r.gates, inverse=True)
        if r.perm is not None:
            want = _part_shape(shapes[r.keras], r, part.rows)
            a = a.reshape(tuple(want[i] for i in r.perm)).transpose(np.argsort(r.perm))
        a = a.T if r.transpose else a
        if r.part is not None:
            stacked.setdefault(r.keras, {})[r.part] = a
        else:
            out[r.keras] = np.ascontiguousarray(a).reshape(a.shape).copy()  # () stays ()
    flat = {r.keras for r in part.rows if r.flat}
    for name, parts in stacked.items():
        join = np.concatenate if name in flat else np.stack
        out[name] = join([parts[i] for i in sorted(parts)])
    for r in part.rows:  # Keras's single bias = torch's two
        if r.zero:
            out[r.keras] = out[r.keras] + _tensor(part.module, r.torch).detach().cpu().numpy()
    return [out[n] for n in part.names]


def describe(part: Part, prefix: str) -> list[str]:
    """One line per torch tensor: Keras array and shape -> torch name and shape, how."""
    shapes = keras_shapes(part.module, part.rows)
    lines = []
    for r in part.rows:
        t = f"{prefix}{r.torch} {tuple(_tensor(part.module, r.torch).shape)}"
        if r.zero:
            lines.append(
                f"    (none) -> {t}  zero, frozen; added into Keras {r.keras} on the way back"
            )
            continue
        k = r.keras + (f"[{r.part}]" if r.part is not None else "")
        shape = _part_shape(shapes[r.keras], r, part.rows)
        how = [
            w
            for w, on in (
                ("transposed", r.transpose),
                (f"axes {r.perm}", r.perm),
                (f"gates {r.gates}", r.gates),
            )
            if on
        ]
        lines.append(f"    {k} {shape} -> {t}  {', '.join(how) or 'as is'}")
    return lines
