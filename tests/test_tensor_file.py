"""The safetensors writer of checkpoints and resume states: what it writes reads back bit for bit with
safetensors' own loader, the returned digest is the file's, and the data starts aligned."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from diffrec_cli.training import tensor_file
from diffrec_cli.training.tensor_file import save_tensors, writable, write_tensors


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 7, generator=g)
    return {
        "w": base,
        "w_again": base,  # two names over one storage: written twice, as two tensors
        "half": torch.randn(3, generator=g).to(torch.bfloat16),
        "f16": torch.randn(2, 2, generator=g).half(),
        "double": torch.randn(4, generator=g, dtype=torch.float64),
        "count": torch.tensor(7),  # 0-d
        "ids": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        "flags": torch.tensor([True, False, True]),
        "bytes": torch.arange(3, dtype=torch.uint8),
        "empty": torch.zeros(0, 4),
    }


def test_round_trip_is_bit_exact_and_the_digest_is_the_files(tmp_path):
    path = tmp_path / "t.safetensors"
    tensors = _tensors()
    digest = write_tensors(path, tensors, {"diffrec": "2", "format": "pt"})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    back = load_file(str(path))
    assert set(back) == set(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape, name
        assert torch.equal(back[name].view(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8)), name
    with safe_open(str(path), "pt") as handle:
        assert handle.metadata() == {"diffrec": "2", "format": "pt"}


def test_header_is_padded_to_eight_bytes_and_larger_elements_come_first(tmp_path):
    path = tmp_path / "t.safetensors"
    write_tensors(path, _tensors(), {})
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    assert (8 + length) % 8 == 0
    header = json.loads(raw[8:8 + length])
    assert "__metadata__" not in header
    order = sorted(header, key=lambda name: header[name]["data_offsets"][0])
    assert header[order[0]]["data_offsets"][0] == 0
    for before, after in zip(order, order[1:]):  # no gaps, no overlaps
        assert header[before]["data_offsets"][1] == header[after]["data_offsets"][0]
    sizes = [_tensors()[name].element_size() for name in order]
    assert sizes == sorted(sizes, reverse=True)
    assert header[order[-1]]["data_offsets"][1] == len(raw) - 8 - length


def test_large_tensors_are_written_in_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(tensor_file, "WRITE_BLOCK", 24)  # 24 bytes per write: many blocks, one partial
    path = tmp_path / "t.safetensors"
    tensors = {"x": torch.arange(101, dtype=torch.float32)}
    digest = write_tensors(path, tensors, {})
    assert torch.equal(load_file(str(path))["x"], tensors["x"])
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_what_it_cannot_take_goes_through_safetensors(tmp_path):
    strided = torch.arange(12.0).reshape(3, 4).t()
    assert not writable({"t": strided})
    with pytest.raises(ValueError):  # safetensors' own writer refuses non-contiguous tensors
        save_tensors(tmp_path / "s.safetensors", {"t": strided}, {})
    path = tmp_path / "c.safetensors"
    shared = torch.arange(4.0).to(torch.complex64)
    digest = save_tensors(path, {"c": shared, "c_again": shared}, {})  # one storage twice: copied for it
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    back = load_file(str(path))
    assert torch.equal(back["c"], shared) and torch.equal(back["c_again"], shared)


def test_a_failing_hash_is_raised_not_recorded(tmp_path, monkeypatch):
    class Broken:
        def __init__(self, data):
            pass

        def update(self, data):
            raise MemoryError("no room to hash")

        def hexdigest(self):
            return "0" * 64

    monkeypatch.setattr(tensor_file.hashlib, "sha256", Broken)
    with pytest.raises(MemoryError, match="no room to hash"):
        write_tensors(tmp_path / "t.safetensors", {"x": torch.ones(3)}, {})
