"""Checks every reader makes before it trusts a byte: the file itself, sizes against a budget,
zip archives (members, compression, declared sizes), JSON, dtypes, finiteness, checksums.

A bad file is one ``Refused`` line naming the path and the problem (``reading``); a missing
one a ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import mmap
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...common.errors import Refused, one_line

MAX_BYTES = 1 << 30  # all arrays (and archive members) of one file together
MAX_JSON_BYTES = 64 << 20  # a config or metadata text
MAX_H5_OBJECTS = 100_000  # groups and datasets visited in one HDF5 file
MAX_DEPTH = 32  # group nesting in an HDF5 file (nested models included)
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
STAMP = "torch_rnnsin"  # the attribute / metadata key of the files this package writes


def check_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a regular file of at most MAX_BYTES; otherwise
    FileNotFoundError (missing) or Refused (a directory, FIFO, device, too large)."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as e:
        raise Refused(f"{path}: cannot be read ({one_line(e)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise Refused(f"{path}: is a directory, not a model file")
    if not stat.S_ISREG(st.st_mode):
        raise Refused(f"{path}: not a regular file")
    if st.st_size > MAX_BYTES:
        raise Refused(f"{path}: {st.st_size} bytes, more than the {MAX_BYTES} allowed")
    return path


@contextlib.contextmanager
def reading(path: Path, kind: str) -> Iterator[None]:
    """Turn whatever a reader raises into one Refused line naming ``path``."""
    try:
        yield
    except FileNotFoundError:
        raise
    except ValueError as e:
        msg = one_line(e)
        kind = type(e) if isinstance(e, Refused) else Refused  # a subclass stays itself
        raise kind(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except Exception as e:  # h5py, zipfile, json, torch, safetensors: anything
        raise Refused(
            f"{path}: not a readable {kind} ({type(e).__name__}: {one_line(e)})"
        ) from None


def read_bytes(path: Path) -> bytearray:
    """The whole file in one writable buffer (one copy: the floor of any reader)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_BYTES:
            raise Refused(f"{size} bytes, more than the {MAX_BYTES} allowed")
        buf = bytearray(size)
        if f.readinto(buf) != size:
            raise Refused("the file changed size while it was read")
    return buf


def map_file(path: Path) -> mmap.mmap:
    """The whole file mapped copy-on-write (nothing is ever written back): its pages are read
    when touched, and ``release_pages`` hands them back once copied elsewhere, so that a large
    model never has the whole file and the whole model in memory at once."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_BYTES:
            raise Refused(f"{size} bytes, more than the {MAX_BYTES} allowed")
        if size == 0:
            raise Refused("an empty file")
        return mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)


def release_pages(mm: mmap.mmap, start: int, size: int) -> None:
    """Hand back the whole pages of ``mm[start:start + size]``; touched again, they are read
    again from the file (a hint: nothing where the system has no madvise)."""
    page = mmap.PAGESIZE
    lo, hi = -(-start // page) * page, (start + size) // page * page
    if hi > lo and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class Budget:
    """Bytes of arrays and HDF5 objects read so far from one file, against the limits."""

    def __init__(self) -> None:
        self.bytes = 0
        self.objects = 0

    def take(self, nbytes: int, what: str) -> None:
        self.bytes += nbytes
        if self.bytes > MAX_BYTES:
            raise Refused(f"{what}: the arrays exceed {MAX_BYTES} bytes in all")

    def visit(self) -> None:
        self.objects += 1
        if self.objects > MAX_H5_OBJECTS:
            raise Refused(f"more than {MAX_H5_OBJECTS} HDF5 objects")


def check_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """Only real numbers: signed/unsigned integers and floats (no bool, complex, object,
    strings or records)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"{what}: dtype {dtype} is not a real number type (int or float)")
    return dtype


def as_real_array(a: object, what: str) -> np.ndarray:
    """A native-byte-order, C-contiguous numpy array of real numbers (torch tensors
    accepted); no copy when ``a`` already is one."""
    if hasattr(a, "detach"):
        try:
            a = a.detach().cpu().numpy()
        except TypeError as e:  # bfloat16 and other dtypes numpy has not
            raise Refused(f"{what}: {one_line(e)}") from None
    a = np.asarray(a)
    check_dtype(a.dtype, what)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return a if a.flags.c_contiguous else a.copy(order="C")  # ascontiguousarray makes 0-d 1-d


def check_finite(a: np.ndarray, what: str) -> None:
    """NaN or inf weights are refused, on write as on read."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise Refused(f"{what}: holds NaN or inf values")


def digest(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (as written: native, C order)."""
    h = hashlib.sha256(f"{a.dtype.str}{tuple(a.shape)}".encode())
    h.update(memoryview(a if a.flags.c_contiguous else a.copy(order="C")).cast("B"))
    return h.hexdigest()


def text_digest(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def verify(arrays: dict[str, np.ndarray], sums: object, what: str) -> None:
    """Every array against its recorded sha256, the same names on both sides."""
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise Refused(f"{what}: the checksums are not a name -> sha256 table")
    missing, extra = sorted(set(arrays) - set(sums)), sorted(set(sums) - set(arrays))
    if missing or extra:
        name = (missing or extra)[0]
        raise Refused(f"{what}: tensor {name!r} has no checksum or is missing (damaged file?)")
    for name, a in arrays.items():
        if digest(a) != sums[name]:
            raise Refused(f"tensor {name!r} does not match its checksum (damaged file)")


# --- zip archives (.keras, .npz, .pt) ----------------------------------------------------


def zip_members(z: zipfile.ZipFile, methods: set[int] = ZIP_METHODS) -> dict[str, zipfile.ZipInfo]:
    """Members by name, refused before any is read: encrypted, an unsupported compression,
    a duplicate name, or declared sizes above MAX_BYTES together."""
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in z.infolist():
        if info.flag_bits & 0x1:
            raise Refused(f"member {info.filename!r} is encrypted")
        if info.compress_type not in methods:
            raise Refused(
                f"member {info.filename!r} uses zip compression method {info.compress_type}, "
                f"not one of {sorted(methods)}"
            )
        if info.filename in members:
            raise Refused(f"member {info.filename!r} appears twice")
        total += info.file_size
        if total > MAX_BYTES:
            raise Refused(f"members expand to more than {MAX_BYTES} bytes")
        members[info.filename] = info
    return members


def zip_read(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_BYTES) -> bytearray:
    """A member's bytes (CRC checked), never more than its declared size (at most ``limit``)."""
    if info.file_size > limit:
        raise Refused(f"member {info.filename!r} declares {info.file_size} bytes (> {limit})")
    buf = bytearray(info.file_size)
    view, n = memoryview(buf), 0
    with z.open(info) as f:
        while n < len(buf):  # in chunks: ZipExtFile.readinto would read the whole into bytes first
            got = f.readinto(view[n : n + (8 << 20)])
            if not got:
                break
            n += got
        if n != info.file_size or f.read(1):  # the read to the end checks the CRC
            raise Refused(f"member {info.filename!r} does not hold its declared size")
    return buf


def zip_stored(path: Path, info: zipfile.ZipInfo) -> tuple[mmap.mmap, int] | None:
    """A stored (uncompressed) member read in place: the archive mapped and where the member's
    bytes begin in it, its CRC checked; None for a compressed (or empty) member."""
    if info.compress_type != zipfile.ZIP_STORED or info.file_size == 0:
        return None
    if info.file_size > MAX_BYTES:
        raise Refused(f"member {info.filename!r} declares {info.file_size} bytes (> {MAX_BYTES})")
    mm = map_file(path)
    at = info.header_offset
    head = mm[at : at + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise Refused(f"member {info.filename!r}: a damaged zip local header")
    start = at + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    if info.compress_size != info.file_size or start + info.file_size > len(mm):
        raise Refused(f"member {info.filename!r} does not hold its declared size")
    crc, view = 0, memoryview(mm)
    for lo in range(start, start + info.file_size, 8 << 20):
        n = min(8 << 20, start + info.file_size - lo)
        crc = zlib.crc32(view[lo : lo + n], crc)
        release_pages(mm, lo, n)
    view.release()
    if crc != info.CRC:
        raise Refused(f"member {info.filename!r}: bad CRC (damaged file)")
    return mm, start


def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise Refused(f"is a single .npy array, not a zip archive ({what})")
    if not zipfile.is_zipfile(path):
        raise Refused(f"not a zip archive ({what})")
    return zipfile.ZipFile(path)


def parse_json(data: bytes | bytearray | str, what: str) -> object:
    if len(data) > MAX_JSON_BYTES:
        raise Refused(f"{what}: more than {MAX_JSON_BYTES} bytes of JSON")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise Refused(f"{what}: not valid JSON ({one_line(e)})") from None


def nbytes(shape: tuple[int, ...] | list[int], dtype: np.dtype) -> int:
    """Python ints: no overflow whatever a header claims."""
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
