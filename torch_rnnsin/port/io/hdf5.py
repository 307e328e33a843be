"""HDF5 files read safely: libhdf5 parses the file in a forked child, the arrays are read in place.

libhdf5 trusts what it reads: fuzzing found damaged files on which it loops for ever (in a
string's global heap, in a group's links), allocates gigabytes for one string, or crashes.
So it never parses a file in this process. The file is read into one buffer (the floor of
any reader); a forked child (time and memory limits, crash-proof) opens that buffer with
h5py, walks every group through hard links only, checks each dataset (real dtype, size,
storage inside the file) and reads the attributes, and sends back a small description:
groups, their string attributes, and where each dataset's bytes lie in the buffer. The
arrays are then views into the buffer, checked against its bounds: no second copy, no
pipe, no copy of a float32 little-endian array. Datasets that are not stored contiguously
(chunked, compact, unallocated) are read by the child and piped back.

Global heaps (where variable-length strings live) are checked before libhdf5 reads a string
(it loops for ever on a heap whose free space claims 0 bytes): only the bytes outside the
datasets' data are scanned, so the check costs nothing on a large model.
"""

from __future__ import annotations

import gc
import io
import json
import math
import mmap
import os
import resource
import select
import signal
import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from ...common.errors import Refused, one_line
from .guards import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_JSON_BYTES,
    Budget,
    as_real_array,
    check_dtype,
    nbytes,
    parse_json,
    release_pages,
)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
GCOL = b"GCOL\x01\x00\x00\x00"  # a global heap collection, version 1
MAX_ATTR_BYTES = 4 * MAX_JSON_BYTES  # all attributes of one file together


@dataclass
class H5Tree:
    """An HDF5 file as read: every group (path "" is the root; "a/b" below it) with its
    children's names and its string attributes, and every dataset's array."""

    groups: dict[str, dict] = field(default_factory=dict)  # path -> {"children", "attrs"}
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # dataset path -> array

    def is_group(self, path: str) -> bool:
        return path in self.groups

    def children(self, path: str, what: str) -> list[str]:
        if path not in self.groups:
            kind = "a dataset" if path in self.arrays else "nothing"
            raise Refused(f"{what}: expected a group at {path or '/'!r}, found {kind}")
        return self.groups[path]["children"]

    def array(self, path: str, what: str) -> np.ndarray:
        if path not in self.arrays:
            kind = "a group" if path in self.groups else "nothing"
            raise Refused(f"{what}: expected a dataset at {path!r}, found {kind}")
        return self.arrays[path]

    def has_attr(self, path: str, name: str) -> bool:
        return name in self.groups.get(path, {}).get("attrs", {})

    def text(self, path: str, name: str, what: str) -> str:
        v = self.groups.get(path, {}).get("attrs", {}).get(name)
        if v is None:
            raise Refused(f"{what}: no {name!r} attribute")
        if not isinstance(v, str):
            raise Refused(f"{what}: attribute {name!r} is not a string")
        return v

    def strings(self, path: str, name: str, what: str) -> list[str]:
        """A string-list attribute as Keras writes it (possibly split as name0, name1, ...)."""
        attrs = self.groups.get(path, {}).get("attrs", {})
        keys = [name] if name in attrs else []
        while name not in attrs and f"{name}{len(keys)}" in attrs:
            keys.append(f"{name}{len(keys)}")
        if not keys:
            raise Refused(f"{what}: no {name!r} attribute")
        out: list[str] = []
        for k in keys:
            v = attrs[k]
            out += [v] if isinstance(v, str) else v
        return out


def join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def read_h5(buf, timeout: float = 120.0, start: int = 0, size: int | None = None) -> H5Tree:
    """The HDF5 file held in ``buf[start:start + size]`` (a bytearray, or a file mapped by
    ``guards.map_file``) as an H5Tree (libhdf5 runs in an isolated child); the arrays are
    views into ``buf``."""
    end = len(buf) if size is None else start + size
    if not 0 <= start < end <= len(buf):
        raise Refused("an empty file")
    meta, piped = isolated(walk, buf, start, end, timeout=timeout)
    tree = H5Tree(groups=meta["groups"])
    piped = iter(piped)
    for path, (dtype, shape, offset) in meta["datasets"].items():
        dtype = check_dtype(np.dtype(str(dtype)), path)
        size = nbytes(shape, dtype)
        if offset is None:
            a = next(piped)
            if a.dtype != dtype or list(a.shape) != list(shape):
                raise Refused(f"{path}: the HDF5 reader's answer does not match the dataset")
        else:
            if not (offset >= 0 and offset + size <= end - start):
                raise Refused(f"{path}: its data lies outside the file")
            # unaligned (a .keras's member starts anywhere): a view still, copied (aligned)
            # only as it goes into torch, one array at a time
            a = np.frombuffer(buf, dtype, math.prod(shape), start + offset).reshape(shape)
        tree.arrays[path] = a if dtype.isnative else a.astype(dtype.newbyteorder("="))
    return tree


def release(a: np.ndarray) -> None:
    """Hand back the pages of an array read in place from a mapped file, once it was copied
    elsewhere (touched again, they are read again from the file); nothing for other arrays."""
    owner = a
    while isinstance(owner, np.ndarray):
        owner = owner.base
    owner = owner.obj if isinstance(owner, memoryview) else owner
    if isinstance(owner, mmap.mmap) and a.nbytes:
        release_pages(
            owner, a.ctypes.data - np.frombuffer(owner, np.uint8, 1).ctypes.data, a.nbytes
        )


# --- in the child ---------------------------------------------------------------------------


class BufferFile(io.RawIOBase):
    """A read-only file over a buffer, for h5py's file-object driver: reading the metadata
    copies only what libhdf5 asks for, and the child never writes to the parent's pages."""

    def __init__(self, buf, start: int = 0, end: int | None = None) -> None:
        self.view, self.pos = memoryview(buf)[start:end], 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos + (0, self.pos, len(self.view))[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b) -> int:
        chunk = self.view[self.pos : self.pos + len(b)]
        n = len(chunk)
        memoryview(b).cast("B")[:n] = chunk
        self.pos += n
        return n


def walk(buf, start: int = 0, end: int | None = None) -> tuple[dict, list[np.ndarray]]:
    """(description, arrays of the datasets not stored contiguously) of the HDF5 file in
    ``buf[start:end]``. Run ``isolated``."""
    budget = Budget()
    groups: dict[str, dict] = {}
    datasets: dict[str, list] = {}
    piped: list[np.ndarray] = []
    with h5py.File(BufferFile(buf, start, end), "r") as h5:
        objects = {}
        stack = [("", h5, 0)]
        while stack:
            path, g, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise Refused(f"{path}: groups nested deeper than {MAX_DEPTH}")
            budget.visit()
            groups[path] = {"children": list(g.keys()), "attrs": {}}
            objects[path] = g
            for name in groups[path]["children"]:
                p = join(path, name)
                link = g.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink):
                    raise Refused(f"{p} is an HDF5 {type(link).__name__}; links are not followed")
                obj = g[name]
                if isinstance(obj, h5py.Group):
                    stack.append((p, obj, depth + 1))
                elif isinstance(obj, h5py.Dataset):
                    budget.visit()
                    datasets[p] = dataset_info(obj, p, budget, piped)
                else:
                    raise Refused(f"{p}: an HDF5 {type(obj).__name__}, not a group or dataset")
        check_global_heaps(buf, [(o, o + n) for o, n in extents(datasets)], start, end)
        total = [0]
        for path, g in objects.items():
            groups[path]["attrs"] = string_attrs(g, path or "/", total)
    return {"groups": groups, "datasets": datasets}, piped


def extents(datasets: dict[str, list]) -> list[tuple[int, int]]:
    out = []
    for dtype, shape, offset in datasets.values():
        if offset is not None:
            out.append((offset, nbytes(shape, np.dtype(dtype))))
    return out


def dataset_info(ds: h5py.Dataset, what: str, budget: Budget, piped: list) -> list:
    """[dtype, shape, offset of its bytes in the file, or None: read here and piped]."""
    dtype = check_dtype(ds.dtype, what)
    if ds.shape is None:
        raise Refused(f"{what}: an empty dataspace")
    if ds.external or ds.is_virtual:
        raise Refused(f"{what}: data stored outside the file is not read")
    size = nbytes(ds.shape, dtype)
    budget.take(size, what)
    offset = None
    if ds.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is not None and ds.id.get_storage_size() != size:
            offset = None
    if offset is None:
        piped.append(as_real_array(ds[()], what))
    return [dtype.str, list(ds.shape), offset]


def string_attrs(obj, what: str, total: list[int]) -> dict[str, str | list[str]]:
    """Each string (or list of strings) attribute; others are left out. Sizes are checked
    before anything is read (a variable-length string's heap is inside the file, checked)."""
    out: dict[str, str | list[str]] = {}
    for name in obj.attrs:
        aid = obj.attrs.get_id(name)
        if aid.shape is not None and math.prod(aid.shape) == 0:
            out[name] = []  # an empty list (Keras writes it as float64)
            continue
        if aid.dtype.kind not in "SUO":
            continue
        size = math.prod(aid.shape or ()) * aid.dtype.itemsize
        total[0] += size
        if size > MAX_JSON_BYTES or total[0] > MAX_ATTR_BYTES:
            raise Refused(f"{what}: attribute {name!r} is too large")
        values = np.asarray(obj.attrs[name])
        if values.dtype.kind not in "SUO":
            continue
        items = []
        for v in values.reshape(-1).tolist():
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            if not isinstance(v, str):
                raise Refused(f"{what}: attribute {name!r} is not a list of strings")
            items.append(v)
        out[name] = items[0] if values.shape == () else items
    return out


def check_global_heaps(
    data, skip: list[tuple[int, int]] = (), start: int = 0, end: int | None = None
) -> None:
    """Refuse damaged global heap collections (where variable-length strings, such as the
    Keras 2 ``layer_names``, live) before HDF5 parses them: HDF5 loops forever on a
    collection whose free-space object claims 0 bytes. The file is ``data[start:end]``;
    ``skip``: (start, end) ranges of dataset bytes in the file, not scanned."""
    end = len(data) if end is None else end
    base = next(
        (
            b
            for b in (0, 512, 1024, 2048, 4096)
            if data[start + b : start + b + 8] == HDF5_SIGNATURE
        ),
        None,
    )
    if base is None or start + base + 15 > end:
        return  # not HDF5: h5py says so
    base += start
    L = data[base + 14] if data[base + 8] < 2 else data[base + 10]  # size of lengths
    if L not in (2, 4, 8):
        raise Refused(f"an HDF5 superblock with {L}-byte lengths")
    head = (8 + L + 7) & ~7  # collection header and object header: the same size
    gaps, at = [], start
    for lo, hi in sorted(skip):
        if start + lo > at:
            gaps.append((at, start + lo))
        at = max(at, start + hi)
    gaps.append((at, end))
    for lo, hi in gaps:
        at = data.find(GCOL, lo, min(hi + len(GCOL) - 1, end))
        while at >= 0:
            check_heap(data, at, L, head, start, end)
            at = data.find(GCOL, at + 1, min(hi + len(GCOL) - 1, end))


def check_heap(data, at: int, L: int, head: int, start: int, stop: int) -> None:
    size = int.from_bytes(data[at + 8 : at + 8 + L], "little")
    end = at + size
    if size < head or end > stop:
        raise Refused(f"an HDF5 global heap at byte {at - start} claims {size} bytes")
    p = at + head
    while p + head <= end:  # the objects, then the free space
        index = int.from_bytes(data[p : p + 2], "little")
        n = int.from_bytes(data[p + 8 : p + 8 + L], "little")
        need = head + ((n + 7) & ~7) if index else n
        if need <= 0 or p + need > end:
            raise Refused(f"a damaged HDF5 global heap at byte {at - start}")
        p += need


# --- the isolated child ---------------------------------------------------------------------


def limit_memory(extra: int = 1 << 30) -> None:
    """This process may map at most ``extra`` bytes more than it has now (Linux)."""
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    resource.setrlimit(resource.RLIMIT_AS, (now + extra, now + extra))


def isolated(fn, *args, timeout: float = 120.0) -> tuple[object, list[np.ndarray]]:
    """``fn(*args)`` -> (JSON-able, arrays), run in a forked child with time and memory limits.

    Any hang, huge allocation or crash there is one clean Refused here. The child sends back
    a JSON header and the arrays' raw bytes, checked like any file. Without fork (Windows)
    ``fn`` runs in this process."""
    if not hasattr(os, "fork"):
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(r)
        child_run(w, fn, args)
    os.close(w)
    deadline = time.monotonic() + timeout
    chunks, size = [], 0
    try:
        while chunk := wait_read(r, deadline):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BYTES + 4 * MAX_JSON_BYTES:
                raise Refused("the HDF5 reader sent more than the size limits allow")
    except Refused:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    data = bytearray().join(chunks)
    if os.WIFSIGNALED(status) or len(data) < 8:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status}"
        raise Refused(f"HDF5 failed reading the file (its reader ended with {how})")
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
        raise Refused("HDF5 took too long reading the file")
    return os.read(fd, 1 << 20)


def child_answer(data: bytearray) -> tuple[object, list[np.ndarray]]:
    """The child's header and arrays, every size and dtype checked."""
    n = int.from_bytes(data[:8], "little")
    if n > 4 * MAX_JSON_BYTES or 8 + n > len(data):
        raise Refused("the HDF5 reader's answer is cut short")
    head = parse_json(bytes(data[8 : 8 + n]), "the HDF5 reader's answer")
    if not isinstance(head, dict) or "error" in head:
        raise Refused(str(head.get("error")) if isinstance(head, dict) else "bad answer")
    arrays, at = [], 8 + n
    for dtype, shape in head["arrays"]:
        dtype = check_dtype(np.dtype(str(dtype)), "an array from the HDF5 reader")
        count = math.prod(int(d) for d in shape)
        if at + count * dtype.itemsize > len(data):
            raise Refused("the HDF5 reader's answer is cut short")
        arrays.append(np.frombuffer(data, dtype, count, at).reshape(shape))
        at += count * dtype.itemsize
    if at != len(data):
        raise Refused("the HDF5 reader's answer has trailing bytes")
    return head["ok"], arrays
