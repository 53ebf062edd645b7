"""Write a safetensors file straight from the tensors' memory, hashing it on the way.

``safetensors.torch.save_file`` writes the file, and the checkpoint's checksum then read it back: for a
1.3 GB EASE weight (18,109 items) that re-read and hash took a second per checkpoint, on top of a write
that the disk paces at 3–5 s. Here the bytes are written from the tensors themselves (no copy) while a
second thread hashes the same memory, so the checksum costs nothing beside the write. The layout is the
safetensors format (an 8-byte little-endian header length, the JSON header padded with spaces to 8 bytes,
then the data in header order); files are read back with ``safetensors.torch.load_file`` as before.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import save_file

from diffrec_cli.atomic import file_sha256

# safetensors' names for the dtypes a model here can hold
DTYPE_NAMES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
               torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
               torch.uint8: "U8", torch.bool: "BOOL"}
WRITE_BLOCK = 1 << 26  # 64 MiB per write call: the hashing thread keeps pace with the disk


def writable(tensors: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``write_tensors`` takes these: contiguous CPU tensors of the dtypes above."""
    return all(t.device.type == "cpu" and t.is_contiguous() and t.dtype in DTYPE_NAMES for t in tensors.values())


def raw_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's memory as bytes, without a copy (bf16 has no numpy dtype: viewed as uint8 first)."""
    return memoryview(tensor.reshape(-1).view(torch.uint8).numpy()).cast("B")


def _header(tensors: list[tuple[str, torch.Tensor]], metadata: Mapping[str, str]) -> bytes:
    entries: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, tensor in tensors:
        size = tensor.numel() * tensor.element_size()
        entries[name] = {"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape),
                         "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # the data then starts on an 8-byte boundary
    return struct.pack("<Q", len(text)) + text


def write_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """Write ``tensors`` (see ``writable``) to ``path`` in the safetensors format; returns the file's SHA-256.

    Larger elements first, then by name (as safetensors orders them), so every tensor stays aligned."""
    ordered = sorted(tensors.items(), key=lambda item: (-item[1].element_size(), item[0]))
    header = _header(ordered, metadata)
    views = [raw_bytes(tensor) for _, tensor in ordered]
    digest, failures = hashlib.sha256(header), []

    def hash_all() -> None:
        try:
            for view in views:
                digest.update(view)
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread, raised there
            failures.append(exc)

    # hashlib releases the GIL on large buffers, as file writes do: the hash runs beside the write
    hasher = threading.Thread(target=hash_all, daemon=True)
    hasher.start()
    try:
        with open(path, "wb") as handle:
            handle.write(header)
            for view in views:
                for start in range(0, len(view), WRITE_BLOCK):
                    handle.write(view[start:start + WRITE_BLOCK])
    finally:
        hasher.join()
    if failures:
        raise failures[0]
    return digest.hexdigest()


def save_tensors(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> str:
    """``write_tensors`` where it applies, else safetensors' own writer and a hash of what it wrote (that
    writer refuses two tensors over one storage: only those are copied for it)."""
    if writable(tensors):
        return write_tensors(path, tensors, metadata)
    plain, storages = {}, set()
    for key, value in tensors.items():
        storage = value.untyped_storage().data_ptr()
        plain[key] = value.clone() if storage in storages else value
        storages.add(storage)
    save_file(plain, str(path), metadata=dict(metadata))
    return file_sha256(Path(path))
