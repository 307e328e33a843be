"""Model files as (architecture, arrays): Keras 3 ``.keras`` / ``.weights.h5``, legacy and
Keras 2 ``.h5``, the lesson's ``.npz``, and torch ``.safetensors`` / ``.pt``.

Nothing here imports Keras or TensorFlow, unpickles, runs code from a file, or follows an
HDF5 link out of the file. Every size is checked before it is read (zip members' declared
sizes, ``.npy`` headers, HDF5 dataset shapes), so a small file that claims gigabytes is
refused up front. HDF5 files are read in a forked child with time and memory limits:
fuzzing found damaged files on which HDF5 itself loops for ever, allocates gigabytes or
crashes, and each of these is then a clean refusal. A bad file gives one ``ValueError``
naming the path and what is wrong; a missing one a ``FileNotFoundError``.

Where the arrays of a Keras layer live (user layer ``lstm_7``, say, an LSTM):

    .keras / .weights.h5   layers/<snake class>[_k]/cell/vars/0..2, ``_k`` counting the
                           layers of that class in the config's order (``lstm``, ``lstm_1``);
                           the user's names exist only in the config (Keras 3, and the
                           .keras of Keras 2.13+)
    legacy .h5 (Keras 2/3) model_weights/<name>/ + the ``layer_names`` / ``weight_names``
                           attributes, which are followed as written
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import mmap
import os
import re
import select
import signal
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_BYTES = 1 << 30  # all arrays (and archive members) of one file together
MAX_JSON_BYTES = 64 << 20  # a config or metadata text
MAX_H5_OBJECTS = 100_000  # groups and datasets visited in one HDF5 file
MAX_DEPTH = 16  # group nesting below layers/<layer>
MODEL_CLASSES = ("Sequential", "Functional", "Model")
RNN_CLASSES = ("SimpleRNN", "LSTM", "GRU")
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
KERAS_FORMAT_VERSION = "3.0.0"  # written to metadata.json: the format, not an installed Keras


@dataclass
class KerasFile:
    """A Keras model as read from a file.

    ``config`` is the model's Keras config exactly as the file holds it; ``weights`` maps each
    user layer name to its arrays in ``layer.get_weights()`` order (Bidirectional: the forward
    layer's, then the backward layer's); layers without weights are absent. ``dialect`` is
    ``"keras3"`` (.keras / .weights.h5), ``"keras3-h5"`` (legacy .h5 written by Keras 3),
    ``"keras2-h5"`` (Keras 2 / tf.keras .h5) or ``"keras2"`` (a .keras written by Keras 2.13+:
    the Keras 3 layout, with Keras 2 layer configs)."""

    config: dict
    weights: dict[str, list[np.ndarray]]
    dialect: str
    path: str


# --- guards ------------------------------------------------------------------------------


def one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a regular file of at most MAX_BYTES; otherwise
    FileNotFoundError (missing) or ValueError (a directory, FIFO, device, too large)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read ({one_line(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{path}: is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    if st.st_size > MAX_BYTES:
        raise ValueError(f"{path}: {st.st_size} bytes, more than the {MAX_BYTES} allowed")
    return path


@contextlib.contextmanager
def reading(path: Path, kind: str) -> Iterator[None]:
    """Turn whatever a reader raises into one ValueError line naming ``path``."""
    try:
        yield
    except FileNotFoundError:
        raise
    except ValueError as e:
        msg = one_line(e)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as e:  # h5py, zipfile, json, torch, safetensors: anything
        raise ValueError(
            f"{path}: not a readable {kind} ({type(e).__name__}: {one_line(e)})"
        ) from None


class Budget:
    """Bytes of arrays and HDF5 objects read so far from one file, against the limits."""

    def __init__(self) -> None:
        self.bytes = 0
        self.objects = 0

    def take(self, nbytes: int, what: str) -> None:
        self.bytes += nbytes
        if self.bytes > MAX_BYTES:
            raise ValueError(f"{what}: the arrays exceed {MAX_BYTES} bytes in all")

    def visit(self) -> None:
        self.objects += 1
        if self.objects > MAX_H5_OBJECTS:
            raise ValueError(f"more than {MAX_H5_OBJECTS} HDF5 objects")


def check_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """Only real numbers: signed/unsigned integers and floats (no bool, complex, object,
    strings or records)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"{what}: dtype {dtype} is not a real number type (int or float)")
    return dtype


def as_real_array(a: object, what: str) -> np.ndarray:
    """A native-byte-order numpy array of real numbers (torch tensors accepted)."""
    if hasattr(a, "detach"):
        try:
            a = a.detach().cpu().numpy()
        except TypeError as e:  # bfloat16 and other dtypes numpy has not
            raise ValueError(f"{what}: {one_line(e)}") from None
    a = np.asarray(a)
    check_dtype(a.dtype, what)
    return np.ascontiguousarray(a.astype(a.dtype.newbyteorder("="), copy=False))


# --- zip archives (.keras, .npz, .pt) ----------------------------------------------------


def zip_members(z: zipfile.ZipFile, methods: set[int] = ZIP_METHODS) -> dict[str, zipfile.ZipInfo]:
    """Members by name, refused before any is read: encrypted, an unsupported compression,
    a duplicate name, or declared sizes above MAX_BYTES together."""
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in z.infolist():
        if info.flag_bits & 0x1:
            raise ValueError(f"member {info.filename!r} is encrypted")
        if info.compress_type not in methods:
            raise ValueError(
                f"member {info.filename!r} uses zip compression method {info.compress_type}, "
                f"not one of {sorted(methods)}"
            )
        if info.filename in members:
            raise ValueError(f"member {info.filename!r} appears twice")
        total += info.file_size
        if total > MAX_BYTES:
            raise ValueError(f"members expand to more than {MAX_BYTES} bytes")
        members[info.filename] = info
    return members


def zip_read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_BYTES) -> bytes:
    """A member's bytes, never more than its declared size (itself at most ``limit``)."""
    if info.file_size > limit:
        raise ValueError(f"member {info.filename!r} declares {info.file_size} bytes (> {limit})")
    with z.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ValueError(f"member {info.filename!r} does not hold its declared size")
    return data


def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise ValueError(f"is a single .npy array, not a zip archive ({what})")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"not a zip archive ({what})")
    return zipfile.ZipFile(path)


def parse_json(data: bytes | str, what: str) -> object:
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what}: more than {MAX_JSON_BYTES} bytes of JSON")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{what}: not valid JSON ({one_line(e)})") from None


# --- .npz (the lesson's np.savez(path, *arrays)) -----------------------------------------


def npy_array(data: bytes, what: str, budget: Budget) -> np.ndarray:
    """One .npy file's array; the header's shape x dtype checked against the bytes present
    and the budget before anything is allocated."""
    fp = io.BytesIO(data)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"{what}: .npy format version {version} is not supported")
    check_dtype(dtype, what)
    if any(int(s) < 0 for s in shape):
        raise ValueError(f"{what}: negative shape {shape}")
    count = math.prod(int(s) for s in shape)  # Python ints: no overflow
    nbytes = count * dtype.itemsize
    budget.take(nbytes, what)
    offset = fp.tell()
    if len(data) - offset != nbytes:
        raise ValueError(
            f"{what}: header says {shape} {dtype} ({nbytes} bytes), "
            f"the file holds {len(data) - offset}"
        )
    a = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return as_real_array(a.reshape(shape, order="F" if fortran else "C").copy(), what)


def read_npz(path: str | os.PathLike) -> list[np.ndarray]:
    """The arrays of ``np.savez(path, *arrays)`` (members arr_0 .. arr_{n-1}), in order."""
    path = check_file(path)
    with reading(path, ".npz file"), open_zip(path, "an .npz is a zip of .npy files") as z:
        members = zip_members(z)
        if not members:
            raise ValueError("holds no arrays")
        expected = [f"arr_{i}.npy" for i in range(len(members))]
        if sorted(members) != sorted(expected):
            raise ValueError(
                f"members {sorted(members)[:6]}: expected arr_0.npy .. arr_{len(members) - 1}.npy, "
                "as np.savez(path, *arrays) writes them"
            )
        budget = Budget()
        return [npy_array(zip_read(z, members[n]), n, budget) for n in expected]


# --- Keras configs -----------------------------------------------------------------------


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


def config_layers(config: object) -> list[dict]:
    """The model config's layer entries, after checking the shape of the whole config:
    ``{"class_name": "Sequential" | "Functional" | "Model", "config": {"layers": [...]}}``,
    each layer ``{"class_name": str, "config": {"name": str, ...}}``, names unique."""
    if not isinstance(config, dict):
        raise ValueError(f"the model config is a JSON {type(config).__name__}, not an object")
    cls = config.get("class_name")
    if not isinstance(cls, str) or not isinstance(config.get("config"), dict):
        raise ValueError("the model config needs 'class_name' (a string) and 'config' (an object)")
    if cls not in MODEL_CLASSES:
        raise ValueError(f"model class {cls!r}: only {', '.join(MODEL_CLASSES)} models")
    layers = config["config"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError("the model config has no 'layers' list")
    names: set[str] = set()
    for i, layer in enumerate(layers):
        if not is_layer_config(layer):
            raise ValueError(
                f"layer {i} of the config: expected {{'class_name': str, 'config': {{'name': str}}}}"
            )
        if layer_name(layer) in names:
            raise ValueError(f"layer name {layer_name(layer)!r} appears twice in the config")
        names.add(layer_name(layer))
    return layers


def keras3_paths(config: dict) -> list[tuple[dict, str]]:
    """(layer, group path) for each layer Keras 3 saves, in its order.

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
        out.append((layer, f"layers/{base}" if k == 0 else f"layers/{base}_{k}"))
    return out


# --- HDF5 --------------------------------------------------------------------------------


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
GCOL = b"GCOL\x01\x00\x00\x00"  # a global heap collection, version 1


def check_global_heaps(data) -> None:
    """Refuse damaged global heap collections (where variable-length strings, such as the
    Keras 2 ``layer_names``, live) before HDF5 parses them: HDF5 loops forever on a
    collection whose free-space object claims 0 bytes. ``data``: the file's bytes or mmap."""
    base = next((b for b in (0, 512, 1024, 2048, 4096) if data[b : b + 8] == HDF5_SIGNATURE), None)
    if base is None:
        return  # not HDF5: h5py says so
    L = data[base + 14] if data[base + 8] < 2 else data[base + 10]  # size of lengths
    if L not in (2, 4, 8):
        raise ValueError(f"an HDF5 superblock with {L}-byte lengths")
    align = lambda n: (n + 7) & ~7  # noqa: E731
    head = align(8 + L)  # collection header and object header: the same size
    at = data.find(GCOL)
    while at >= 0:
        size = int.from_bytes(data[at + 8 : at + 8 + L], "little")
        end = at + size
        if size < head or end > len(data):
            raise ValueError(f"an HDF5 global heap at byte {at} claims {size} bytes")
        p = at + head
        while p + head <= end:  # the objects, then the free space
            index = int.from_bytes(data[p : p + 2], "little")
            n = int.from_bytes(data[p + 8 : p + 8 + L], "little")
            need = head + align(n) if index else n
            if need <= 0 or p + need > end:
                raise ValueError(f"a damaged HDF5 global heap at byte {at}")
            p += need
        at = data.find(GCOL, at + 1)


@contextlib.contextmanager
def open_h5(source: Path | bytes):
    """An HDF5 file for reading (a path, or bytes from an archive), checked first."""
    import h5py

    if isinstance(source, bytes):
        check_global_heaps(source)
        with h5py.File(io.BytesIO(source), "r") as h5:
            yield h5
        return
    with open(source, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError("an empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            check_global_heaps(m)
    with h5py.File(source, "r") as h5:
        yield h5


def h5_child(group, name: str, what: str):
    """``group[name]`` through a hard link only (soft and external links are refused)."""
    import h5py

    if not isinstance(group, h5py.Group):
        raise ValueError(f"{what}: expected a group, found a dataset")
    link = group.get(name, getlink=True)
    if link is None:
        raise ValueError(f"{what}: no {name!r}")
    if not isinstance(link, h5py.HardLink):
        raise ValueError(f"{what}/{name} is an HDF5 {type(link).__name__}; links are not followed")
    return group[name]


def h5_has(group, name: str) -> bool:
    """Whether ``group`` has a link ``name``, without resolving it (``name in group`` would
    open an external link's file)."""
    return group.get(name, getlink=True) is not None


def h5_path(group, path: str, what: str):
    obj = group
    for part in path.split("/"):
        if part:
            obj = h5_child(obj, part, what)
            what = f"{what}/{part}"
    return obj


def h5_array(ds, what: str, budget: Budget) -> np.ndarray:
    """A dataset's array, its shape x dtype and storage checked before reading."""
    import h5py

    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{what}: expected a dataset, found a group")
    check_dtype(ds.dtype, what)
    if ds.shape is None:
        raise ValueError(f"{what}: an empty dataspace")
    if ds.external or ds.is_virtual:
        raise ValueError(f"{what}: data stored outside the file is not read")
    budget.take(math.prod(ds.shape) * ds.dtype.itemsize, what)
    return as_real_array(ds[()], what)


def check_attr_size(obj, name: str, what: str) -> None:
    """Refuse an attribute whose declared size is beyond MAX_JSON_BYTES, before reading it
    (variable-length strings live in the file, so the file's size bounds them)."""
    aid = obj.attrs.get_id(name)
    count = math.prod(aid.shape or ())
    if count * aid.dtype.itemsize > MAX_JSON_BYTES:
        raise ValueError(f"{what}: attribute {name!r} is too large")


def h5_strings(obj, name: str, what: str) -> list[str]:
    """A string-list attribute as Keras writes it (possibly split as name0, name1, ...)."""
    attrs = obj.attrs
    if name in attrs:
        keys = [name]
    else:
        keys = []
        while f"{name}{len(keys)}" in attrs:
            keys.append(f"{name}{len(keys)}")
    if not keys:
        raise ValueError(f"{what}: no {name!r} attribute")
    out: list[str] = []
    for k in keys:
        check_attr_size(obj, k, what)
        values = np.atleast_1d(np.asarray(attrs[k]))
        if values.size and values.dtype.kind not in "SUO":
            raise ValueError(f"{what}: attribute {k!r} is not a list of strings")
        for v in values.tolist():
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            if not isinstance(v, str):
                raise ValueError(f"{what}: attribute {k!r} is not a list of strings")
            out.append(v)
    return out


def h5_text(obj, name: str, what: str) -> str:
    if name not in obj.attrs:
        raise ValueError(f"{what}: no {name!r} attribute")
    check_attr_size(obj, name, what)
    v = obj.attrs[name]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if not isinstance(v, str):
        raise ValueError(f"{what}: attribute {name!r} is not a string")
    return v


def limit_memory(extra: int = 1 << 30) -> None:
    """This process may map at most ``extra`` bytes more than it has now (Linux)."""
    import resource

    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    resource.setrlimit(resource.RLIMIT_AS, (now + extra, now + extra))


def isolated(fn, *args, timeout: float = 120.0) -> tuple[object, list[np.ndarray]]:
    """``fn(*args)`` -> (JSON-able, arrays), run in a forked child with time and memory limits.

    HDF5 trusts what it reads: fuzzing found damaged files that make it loop for ever
    (in a string's heap, in a group's links), allocate gigabytes for one string, or crash.
    In a child, any of these is one clean ValueError here. The child sends back a JSON
    header and the arrays' raw bytes, checked like any file. Without fork (Windows) ``fn``
    runs in this process."""
    if not hasattr(os, "fork"):
        return fn(*args)
    import resource  # noqa: F401  imported once here, not again in every child

    import h5py  # noqa: F401

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        child_run(w, fn, args)
    os.close(w)
    deadline = time.monotonic() + timeout
    data = bytearray()
    try:
        while chunk := wait_read(r, deadline):
            data += chunk
            if len(data) > MAX_BYTES + 4 * MAX_JSON_BYTES:
                raise ValueError("the HDF5 reader sent more than the size limits allow")
    except ValueError:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or len(data) < 8:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status}"
        raise ValueError(f"HDF5 failed reading the file (its reader ended with {how})")
    return child_answer(data)


def child_run(w: int, fn, args) -> None:
    """In the forked child: run, send (header, raw arrays) down ``w``, exit."""
    gc.disable()  # a collection would touch, and so copy, every page shared with the parent
    try:
        try:
            limit_memory(2 * MAX_BYTES)
            meta, arrays = fn(*args)
            arrays = [np.ascontiguousarray(a) for a in arrays]
            head = {"ok": meta, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}
        except ValueError as e:
            head, arrays = {"error": one_line(e)}, []
        except BaseException as e:
            head, arrays = {"error": f"{type(e).__name__}: {one_line(e)}"}, []
        text = json.dumps(head).encode()
        write_all(w, len(text).to_bytes(8, "little") + text)
        for a in arrays:
            write_all(w, memoryview(a).cast("B"))
    finally:
        os._exit(0)


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def wait_read(fd: int, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([fd], [], [], left)[0]:
        raise ValueError("HDF5 took too long reading the file")
    return os.read(fd, 1 << 20)


def child_answer(data: bytearray) -> tuple[object, list[np.ndarray]]:
    """The child's header and arrays, every size and dtype checked."""
    n = int.from_bytes(data[:8], "little")
    if n > 4 * MAX_JSON_BYTES or 8 + n > len(data):
        raise ValueError("the HDF5 reader's answer is cut short")
    head = parse_json(bytes(data[8 : 8 + n]), "the HDF5 reader's answer")
    if not isinstance(head, dict) or "error" in head:
        raise ValueError(str(head.get("error")) if isinstance(head, dict) else "bad answer")
    arrays, at = [], 8 + n
    for dtype, shape in head["arrays"]:
        dtype = check_dtype(np.dtype(str(dtype)), "an array from the HDF5 reader")
        count = math.prod(int(d) for d in shape)
        if at + count * dtype.itemsize > len(data):
            raise ValueError("the HDF5 reader's answer is cut short")
        arrays.append(np.frombuffer(data, dtype, count, at).reshape(shape))
        at += count * dtype.itemsize
    if at != len(data):
        raise ValueError("the HDF5 reader's answer has trailing bytes")
    return head["ok"], arrays


def legacy_strings(h5, whole: bool) -> dict:
    """Every string a legacy .h5 is read through: model_config (a whole model), the
    keras_version, layer_names and each layer's weight_names. Run ``isolated``."""
    root = h5_child(h5, "model_weights", "the file") if whole else h5
    return {
        "model_config": h5_text(h5, "model_config", "the file") if whole else None,
        "keras_version": h5_text(h5, "keras_version", "the file")
        if "keras_version" in h5.attrs
        else "",
        "layers": [
            (name, h5_strings(h5_child(root, name, "the weights"), "weight_names", name))
            for name in h5_strings(root, "layer_names", "the weights")
        ],
    }


def legacy_weights(
    root, layers: list, names: set[str], budget: Budget
) -> dict[str, list[np.ndarray]]:
    """Keras 2 / legacy Keras 3 h5: each layer's weight_names, as written."""
    weights: dict[str, list[np.ndarray]] = {}
    for name, weight_names in layers:
        budget.visit()
        g = h5_child(root, name, "the weights")
        arrays = [h5_array(h5_path(g, wn, name), f"{name}/{wn}", budget) for wn in weight_names]
        if not arrays:
            continue
        if name not in names:
            raise ValueError(f"weights for layer {name!r}, which the architecture does not have")
        weights[name] = arrays
    return weights


def h5_read(source: Path | bytes, arch: dict | None) -> tuple[dict, list[np.ndarray]]:
    """Everything taken from one HDF5 file (run ``isolated``): ({"config", "dialect",
    "layers": [[name, number of arrays], ...]}, the arrays in that order). ``arch``: the
    architecture, for a weights-only file; None: the file must hold its own."""
    with open_h5(source) as h5:
        whole = h5_has(h5, "model_weights")  # a whole model, legacy layout
        if whole and arch is not None:
            raise ValueError("this .h5 holds its own architecture; --arch is not needed")
        if not whole and arch is None:
            raise ValueError(
                "a weights-only file: the architecture is needed too "
                "(--arch with a .keras or a config .json)"
            )
        budget = Budget()
        if not whole and "layer_names" not in h5.attrs and "layer_names0" not in h5.attrs:
            config, weights, dialect = arch, keras3_weights(h5, arch, budget), "keras3"
        else:
            strings = legacy_strings(h5, whole)
            config = parse_json(strings["model_config"], "model_config") if whole else arch
            names = {layer_name(layer) for layer in config_layers(config)}
            root = h5_child(h5, "model_weights", "the file") if whole else h5
            weights = legacy_weights(root, strings["layers"], names, budget)
            dialect = "keras3-h5" if strings["keras_version"].startswith("3.") else "keras2-h5"
    meta = {
        "config": config,
        "dialect": dialect,
        "layers": [[k, len(v)] for k, v in weights.items()],
    }
    return meta, [a for v in weights.values() for a in v]


def h5_config(path: Path) -> tuple[str, list]:
    """A legacy .h5's model_config text (run ``isolated``)."""
    with open_h5(path) as h5:
        return h5_text(h5, "model_config", "the file"), []


# Sub-objects of a layer in get_weights() order; anything else follows, sorted by name.
CHILD_ORDER = {"cell": 0, "forward_layer": 1, "backward_layer": 2, "layer": 3}


def keras3_arrays(group, what: str, budget: Budget, depth: int = 0) -> list[np.ndarray]:
    """The arrays of one saved object: its own vars/0..n-1, then its children's."""
    import h5py

    if depth > MAX_DEPTH:
        raise ValueError(f"{what}: groups nested deeper than {MAX_DEPTH}")
    if not isinstance(group, h5py.Group):
        raise ValueError(f"{what}: expected a group, found a dataset")
    budget.visit()
    arrays: list[np.ndarray] = []
    names = sorted(group.keys(), key=lambda n: (n != "vars", CHILD_ORDER.get(n, 9), n))
    for name in names:
        child = h5_child(group, name, what)
        if name == "vars":
            if not isinstance(child, h5py.Group):
                raise ValueError(f"{what}/vars: expected a group, found a dataset")
            keys = list(child.keys())
            if any(not k.isdigit() for k in keys):
                raise ValueError(f"{what}/vars: keys {sorted(keys)[:6]} are not all numbers")
            if sorted(int(k) for k in keys) != list(range(len(keys))):
                raise ValueError(f"{what}/vars: keys {sorted(keys)[:6]} are not 0..{len(keys) - 1}")
            for i in range(len(keys)):
                budget.visit()
                ds = h5_child(child, str(i), f"{what}/vars")
                arrays.append(h5_array(ds, f"{what}/vars/{i}", budget))
        else:
            arrays += keras3_arrays(child, f"{what}/{name}", budget, depth + 1)
    return arrays


def keras3_weights(h5, config: dict, budget: Budget) -> dict[str, list[np.ndarray]]:
    """Keras 3 weights (layers/<snake>[_k]/...) matched to the config's layers by Keras's
    own naming; arrays in the file that no layer claims mean a mismatched architecture."""
    import h5py

    layers_group = h5_child(h5, "layers", "the weights file")
    if not isinstance(layers_group, h5py.Group):
        raise ValueError("'layers' is a dataset, not a group: not a Keras 3 weights file")
    weights: dict[str, list[np.ndarray]] = {}
    claimed = set()
    for layer, p in keras3_paths(config):
        base = p.split("/", 1)[1]
        claimed.add(base)
        if h5_has(layers_group, base):
            arrays = keras3_arrays(h5_child(layers_group, base, "layers"), p, budget)
            if arrays:
                weights[layer_name(layer)] = arrays
    for base in sorted(set(layers_group.keys()) - claimed):
        if keras3_arrays(h5_child(layers_group, base, "layers"), f"layers/{base}", budget):
            raise ValueError(
                f"holds weights at layers/{base}, which no layer of the architecture has "
                "(does the architecture match?)"
            )
    return weights


# --- reading Keras files -----------------------------------------------------------------


def read_arch(arch: str | os.PathLike | dict) -> dict:
    """A model config from a .keras (its config.json), a legacy .h5 (model_config) or a
    config .json (``model.to_json()``); a dict is taken as the config itself."""
    if not isinstance(arch, (str, os.PathLike)):
        try:
            config_layers(arch)
        except ValueError as e:
            raise ValueError(f"the architecture: {one_line(e)}") from None
        return arch
    path = check_file(arch)
    name = path.name.lower()
    with reading(path, "architecture file"):
        if name.endswith(".keras"):
            with open_zip(path, "a .keras file is a zip archive") as z:
                config = keras_zip_config(z)
        elif name.endswith(".json"):
            config = parse_json(path.read_bytes(), "the architecture")
        elif name.endswith((".h5", ".hdf5")):
            config = parse_json(isolated(h5_config, path)[0], "model_config")
        else:
            raise ValueError("an architecture is a .keras, a legacy .h5 or a config .json")
        config_layers(config)
        return config


def keras_zip_config(z: zipfile.ZipFile) -> dict:
    members = zip_members(z)
    if "config.json" not in members:
        raise ValueError(f"no config.json inside (found {sorted(members)[:6]})")
    config = parse_json(zip_read(z, members["config.json"], MAX_JSON_BYTES), "config.json")
    config_layers(config)
    return config


def keras_zip_dialect(z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> str:
    """ "keras3", or "keras2" for a .keras written by Keras 2.13+ (same layout, Keras 2
    layer configs), from metadata.json's keras_version."""
    if "metadata.json" not in members:
        return "keras3"
    meta = parse_json(zip_read(z, members["metadata.json"], MAX_JSON_BYTES), "metadata.json")
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return "keras2" if isinstance(version, str) and version.startswith("2.") else "keras3"


def read_keras(path: str | os.PathLike, arch: str | os.PathLike | dict | None = None) -> KerasFile:
    """A Keras model file: ``.keras``, a legacy ``.h5`` (Keras 3's or Keras 2's
    ``model.save``), or a ``.weights.h5`` (Keras 3 ``save_weights``, or Keras 2's
    ``save_weights`` .h5) with ``arch`` giving its architecture (a .keras, a config .json,
    a legacy .h5, or the config dict itself)."""
    path = check_file(path)
    name = path.name.lower()
    arch_config = read_arch(arch) if arch is not None else None
    with reading(path, "Keras model file"):
        if name.endswith(".keras"):
            if arch_config is not None:
                raise ValueError("a .keras file holds its own architecture; --arch is not needed")
            with open_zip(path, "a .keras file is a zip archive") as z:
                config = keras_zip_config(z)
                members = zip_members(z)
                if "model.weights.h5" not in members:
                    raise ValueError(
                        f"no model.weights.h5 inside (found {sorted(members)[:6]}); "
                        "sharded or .npz weights are not supported"
                    )
                data = zip_read(z, members["model.weights.h5"])
                dialect = keras_zip_dialect(z, members)
            meta, arrays = isolated(h5_read, data, config)
            meta["dialect"] = dialect
        elif name.endswith((".h5", ".hdf5")):
            meta, arrays = isolated(h5_read, path, arch_config)
        else:
            raise ValueError("unknown Keras file type; expected .keras, .h5 or .weights.h5")
        weights, at = {}, 0
        for layer, n in meta["layers"]:
            weights[layer], at = arrays[at : at + n], at + n
        return KerasFile(meta["config"], weights, meta["dialect"], str(path))


# --- writing Keras 3 files ---------------------------------------------------------------


def write_vars(h5, path: str, name: str, arrays: list[np.ndarray]) -> None:
    g = h5.create_group(f"{path}/vars")
    g.attrs["name"] = name
    for i, a in enumerate(arrays):
        g.create_dataset(str(i), data=a)


def write_layer(h5, path: str, layer: dict, arrays: list[np.ndarray], name: str) -> None:
    """One layer's groups exactly where Keras 3 puts them (see ``keras3_arrays``)."""
    cls, cfg = layer["class_name"], layer["config"]
    wrapper = cls in (*RNN_CLASSES, "Bidirectional", "TimeDistributed")
    write_vars(h5, path, name, [] if wrapper else arrays)  # a wrapper's arrays live below
    if cls in RNN_CLASSES:
        write_vars(h5, f"{path}/cell", f"{to_snake_case(cls)}_cell", arrays)
    elif cls == "Bidirectional":
        inner, back = wrapped(cfg, "layer", name), wrapped(cfg, "backward_layer", name, True)
        if len(arrays) % 2:
            raise ValueError(f"layer {name!r}: a Bidirectional needs an even number of arrays")
        half, inner_name = len(arrays) // 2, layer_name(inner)
        write_layer(h5, f"{path}/forward_layer", inner, arrays[:half], f"forward_{inner_name}")
        write_layer(
            h5, f"{path}/backward_layer", back or inner, arrays[half:], f"backward_{inner_name}"
        )
    elif cls == "TimeDistributed":
        inner = wrapped(cfg, "layer", name)
        write_layer(h5, f"{path}/layer", inner, arrays, layer_name(inner))


def wrapped(cfg: dict, key: str, name: str, optional: bool = False) -> dict | None:
    """A wrapper's inner layer config, checked like the model's layers."""
    inner = cfg.get(key)
    if inner is None and optional:
        return None
    if not is_layer_config(inner):
        raise ValueError(f"layer {name!r}: {key!r} is not a layer config")
    return inner


def write_keras3_h5(target, config: dict, weights: dict[str, list[np.ndarray]]) -> None:
    """The Keras 3 ``.weights.h5`` layout into ``target`` (a path or a BytesIO)."""
    import h5py

    placed = keras3_paths(config)
    names = {layer_name(layer) for layer, _ in placed}
    extra = sorted(set(weights) - names)
    if extra:
        raise ValueError(f"weights for {extra}, which the config's layers do not include")
    with h5py.File(target, "w") as h5:
        for layer, p in placed:
            name = layer_name(layer)
            arrays = [
                as_real_array(a, f"{name} array {i}") for i, a in enumerate(weights.get(name, []))
            ]
            write_layer(h5, p, layer, arrays, name)
        h5.create_group("vars").attrs["name"] = str(config["config"].get("name", "model"))


def write_keras(
    path: str | os.PathLike, config: dict, weights: dict[str, list[np.ndarray]]
) -> None:
    """Write ``.keras`` (metadata.json, config.json, model.weights.h5, as Keras 3 does) or a
    Keras 3 ``.weights.h5``, atomically."""
    from ..common.atomic import atomic_path

    path = Path(path)
    name = path.name.lower()
    config_layers(config)
    if name.endswith(".keras"):
        buf = io.BytesIO()
        write_keras3_h5(buf, config, weights)
        metadata = {
            "keras_version": KERAS_FORMAT_VERSION,
            "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
        }
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(config))
            z.writestr("model.weights.h5", buf.getvalue())
    elif name.endswith(".weights.h5"):
        with atomic_path(path) as tmp:
            write_keras3_h5(tmp, config, weights)
    else:
        raise ValueError(f"{path}: write a Keras model as .keras or .weights.h5")


# --- torch files -------------------------------------------------------------------------


def arch_json(arch: object, what: str) -> dict:
    if isinstance(arch, str):
        arch = parse_json(arch, what)
    if not isinstance(arch, dict):
        raise ValueError(f"{what}: the architecture is a {type(arch).__name__}, not an object")
    return arch


def read_torch_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(state_dict arrays, architecture) from ``.safetensors`` (architecture as JSON under
    the metadata key ``arch``) or ``.pt`` (``{"state_dict": ..., "arch": ...}``)."""
    path = check_file(path)
    name = path.name.lower()
    with reading(path, "torch model file"):
        if name.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if "arch" not in meta:
                    raise ValueError("no 'arch' in the metadata: not written by torch_rnnsin")
                arch = arch_json(meta["arch"], "metadata 'arch'")
                arrays = {k: as_real_array(f.get_tensor(k), k) for k in f.keys()}  # noqa: SIM118
            return arrays, arch
        if not name.endswith(".pt"):
            raise ValueError("unknown torch file type; expected .safetensors or .pt")
        with open_zip(path, "torch.save writes a zip archive") as z:
            zip_members(z, {zipfile.ZIP_STORED})
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
            raise ValueError("expected {'state_dict': {...}, 'arch': ...}: no 'state_dict'")
        if "arch" not in obj:
            raise ValueError("no 'arch' entry: not written by torch_rnnsin")
        arrays = {}
        for k, t in obj["state_dict"].items():
            if not isinstance(k, str) or not isinstance(t, torch.Tensor):
                raise ValueError(f"state_dict entry {k!r} is not a named tensor")
            if t.layout != torch.strided or t.is_quantized or t.is_complex():
                raise ValueError(f"{k}: a {t.layout} / {t.dtype} tensor, not a plain real one")
            ints = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
            if not (t.is_floating_point() or t.dtype in ints):
                raise ValueError(f"{k}: dtype {t.dtype} is not a real number type")
            arrays[k] = as_real_array(t, k)
        return arrays, arch_json(obj["arch"], "'arch'")


def write_torch_file(path: str | os.PathLike, state_dict: dict, arch: dict) -> None:
    """Write ``.safetensors`` or ``.pt`` (loadable with ``torch.load(weights_only=True)``),
    atomically; ``arch`` must be JSON-able."""
    from ..common.atomic import atomic_path

    path = Path(path)
    name = path.name.lower()
    try:
        arch_text = json.dumps(arch)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: the architecture is not JSON-able ({one_line(e)})") from None
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise ValueError(f"{path}: state_dict key {k!r} is not a string")
        arrays[k] = as_real_array(v, k)
    if name.endswith(".safetensors"):
        from safetensors.numpy import save

        data = save(arrays, metadata={"arch": arch_text, "format": "np"})
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    elif name.endswith(".pt"):
        import torch

        tensors = {k: torch.from_numpy(a.copy()) for k, a in arrays.items()}
        with atomic_path(path) as tmp:
            torch.save({"state_dict": tensors, "arch": arch_text}, tmp)
    else:
        raise ValueError(f"{path}: write torch weights as .safetensors or .pt")
