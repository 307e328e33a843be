"""This package's torch files: ``.safetensors`` (the architecture as JSON under the metadata
key ``arch``) and ``.pt`` (``{"state_dict", "arch", "sha256", "arch_sha256"}``, read with
``torch.load(weights_only=True)``: nothing is unpickled beyond tensors and plain data).

Both carry the sha256 of every tensor and of the architecture text, checked on load: a
damaged file that still parses is refused, naming the tensor. Files without them were not
written by this package (or by an older one) and are refused too.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...common.atomic import atomic_path
from ...common.errors import Refused, one_line
from .guards import (
    as_real_array,
    check_file,
    check_finite,
    digest,
    open_zip,
    parse_json,
    reading,
    text_digest,
    verify,
    zip_members,
)

try:  # an optional extra: .safetensors is refused, naming it, when it is missing
    from safetensors import safe_open
    from safetensors.numpy import save as safetensors_save
except ImportError:  # pragma: no cover
    safe_open = safetensors_save = None

REAL = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
OLD = (
    "no checksums: not written by this version of torch_rnnsin (port it again from the Keras file)"
)


def arch_json(text: object, what: str) -> dict:
    arch = parse_json(text, what) if isinstance(text, str) else text
    if not isinstance(arch, dict):
        raise Refused(f"{what}: the architecture is a {type(arch).__name__}, not an object")
    return arch


def check_sums(arrays: dict[str, np.ndarray], arch_text: str, sums: object, arch_sum: object):
    if sums is None or arch_sum is None:
        raise Refused(OLD)
    if arch_sum != text_digest(arch_text):
        raise Refused("the architecture does not match its checksum (damaged file)")
    verify(arrays, sums, "the tensors")


def read_torch_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(state_dict arrays, architecture) from ``.safetensors`` or ``.pt``, checksums checked."""
    path = check_file(path)
    name = path.name.lower()
    with reading(path, "torch model file"):
        if name.endswith(".safetensors"):
            if safe_open is None:
                raise Refused("reading .safetensors needs the safetensors package")
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if "arch" not in meta:
                    raise Refused("no 'arch' in the metadata: not written by torch_rnnsin")
                arrays = {k: as_real_array(f.get_tensor(k), k) for k in f.keys()}  # noqa: SIM118
            sums = parse_json(meta["sha256"], "metadata 'sha256'") if "sha256" in meta else None
            check_sums(arrays, meta["arch"], sums, meta.get("arch_sha256"))
            return arrays, arch_json(meta["arch"], "metadata 'arch'")
        if not name.endswith(".pt"):
            raise Refused("unknown torch file type; expected .safetensors or .pt")
        with open_zip(path, "torch.save writes a zip archive") as z:
            zip_members(z, {zipfile.ZIP_STORED})
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
            raise Refused("expected {'state_dict': {...}, 'arch': ...}: no 'state_dict'")
        if not isinstance(obj.get("arch"), str):
            raise Refused("no 'arch' entry: not written by torch_rnnsin")
        arrays = {}
        for k, t in obj["state_dict"].items():
            if not isinstance(k, str) or not isinstance(t, torch.Tensor):
                raise Refused(f"state_dict entry {k!r} is not a named tensor")
            if t.layout != torch.strided or t.is_quantized or t.is_complex():
                raise Refused(f"{k}: a {t.layout} / {t.dtype} tensor, not a plain real one")
            if not (t.is_floating_point() or t.dtype in REAL):
                raise Refused(f"{k}: dtype {t.dtype} is not a real number type")
            arrays[k] = as_real_array(t, k)
        sums = obj.get("sha256")
        sums = parse_json(sums, "'sha256'") if isinstance(sums, str) else None
        check_sums(arrays, obj["arch"], sums, obj.get("arch_sha256"))
        return arrays, arch_json(obj["arch"], "'arch'")


def write_torch_file(path: str | os.PathLike, state_dict: dict, arch: dict) -> None:
    """Write ``.safetensors`` or ``.pt`` atomically, with the sha256 of every tensor and of the
    architecture (JSON-able); NaN/inf tensors are refused."""
    path = Path(path)
    name = path.name.lower()
    try:
        arch_text = json.dumps(arch)
    except (TypeError, ValueError) as e:
        raise Refused(f"{path}: the architecture is not JSON-able ({one_line(e)})") from None
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise Refused(f"{path}: state_dict key {k!r} is not a string")
        try:
            arrays[k] = as_real_array(v, k)
            check_finite(arrays[k], f"tensor {k!r}")
        except ValueError as e:
            raise Refused(f"{path}: {one_line(e)}") from None
    sums = {k: digest(a) for k, a in arrays.items()}
    if name.endswith(".safetensors"):
        if safetensors_save is None:
            raise Refused(f"{path}: writing .safetensors needs the safetensors package")
        meta = {
            "arch": arch_text,
            "format": "np",
            "sha256": json.dumps(sums),
            "arch_sha256": text_digest(arch_text),
        }
        data = safetensors_save(arrays, metadata=meta)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    elif name.endswith(".pt"):
        obj = {
            "state_dict": {k: torch.from_numpy(a.copy()) for k, a in arrays.items()},
            "arch": arch_text,
            # JSON text, not a dict: pickle would share the key strings with the state_dict's,
            # and one damaged name would then match its checksum entry
            "sha256": json.dumps(sums),
            "arch_sha256": text_digest(arch_text),
        }
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    else:
        raise Refused(f"{path}: write torch weights as .safetensors or .pt")
