"""The lesson's ``.npz`` (``np.savez(path, *arrays)``), read without unpickling: every .npy
header checked against the bytes present and the budget before anything is allocated."""

from __future__ import annotations

import io
import os

import numpy as np

from ...common.errors import Refused
from .guards import (
    Budget,
    as_real_array,
    check_dtype,
    check_file,
    nbytes,
    open_zip,
    reading,
    zip_members,
    zip_read,
)


def npy_array(data: bytearray, what: str, budget: Budget) -> np.ndarray:
    """One .npy file's array, its header's shape x dtype checked first."""
    fp = io.BytesIO(data)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise Refused(f"{what}: .npy format version {version} is not supported")
    check_dtype(dtype, what)
    if any(int(s) < 0 for s in shape):
        raise Refused(f"{what}: negative shape {shape}")
    size = nbytes(shape, dtype)
    budget.take(size, what)
    offset = fp.tell()
    if len(data) - offset != size:
        raise Refused(
            f"{what}: header says {shape} {dtype} ({size} bytes), the file holds {len(data) - offset}"
        )
    a = np.frombuffer(data, dtype=dtype, count=size // dtype.itemsize, offset=offset)
    a = a.reshape(shape, order="F" if fortran else "C")
    return as_real_array(a if offset % dtype.itemsize == 0 else a.copy(), what)


def read_npz(path: str | os.PathLike) -> list[np.ndarray]:
    """The arrays of ``np.savez(path, *arrays)`` (members arr_0 .. arr_{n-1}), in order."""
    path = check_file(path)
    with reading(path, ".npz file"), open_zip(path, "an .npz is a zip of .npy files") as z:
        members = zip_members(z)
        if not members:
            raise Refused("holds no arrays")
        expected = [f"arr_{i}.npy" for i in range(len(members))]
        if sorted(members) != sorted(expected):
            raise Refused(
                f"members {sorted(members)[:6]}: expected arr_0.npy .. arr_{len(members) - 1}.npy, "
                "as np.savez(path, *arrays) writes them"
            )
        budget = Budget()
        return [npy_array(zip_read(z, members[n]), n, budget) for n in expected]
