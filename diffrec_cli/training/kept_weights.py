"""The best weights so far, kept in an unnamed temporary file instead of memory while training goes on.

A fit holds a copy of its best weights until it ends. In memory that copy is one more model in the peak
(ML-1M DiffRec: 14.5 MB of a ~490 MB run; at paper size, gigabytes), and it is read only twice: when a
resume state is written and when training ends. Written to a temporary file it costs one sequential write
per improvement. The file has no name (the system removes it when it is closed, also when the process
dies) and holds raw tensor bytes for this process only: it is not a format anyone else reads. Where it
cannot be written (no space, no temporary directory) the copy stays in memory, as before. Where the
temporary directory is itself in memory (a tmpfs ``/tmp``), the copy still takes RAM, only outside the
process's RSS: point ``TMPDIR`` at a disk to save it.
"""

from __future__ import annotations

import tempfile
from typing import IO, Mapping

import torch

from diffrec_cli.training.tensor_file import raw_bytes


class KeptWeights:
    """A copy of a model's state dict: in a temporary file when it could be written there, else in memory."""

    def __init__(self, held: dict[str, torch.Tensor] | None, spill: IO[bytes] | None = None,
                 layout: list[tuple[str, torch.dtype, torch.Size]] | None = None) -> None:
        self._held, self._spill, self._layout = held, spill, layout or []

    @classmethod
    def holding(cls, state: Mapping[str, torch.Tensor]) -> "KeptWeights":
        """These tensors themselves, no copy (a state read back from a resume file, a final closed-form fit)."""
        return cls(dict(state))

    @classmethod
    def copy_of(cls, state: Mapping[str, torch.Tensor]) -> "KeptWeights":
        """A copy of ``state`` (on the CPU), in a temporary file where one can be written."""
        try:
            spill = tempfile.TemporaryFile()
        except OSError:
            return cls._memory_copy(state)
        layout = []
        try:
            for name, value in state.items():
                tensor = value.detach().cpu().contiguous()
                spill.write(raw_bytes(tensor))
                layout.append((name, tensor.dtype, tensor.shape))
            spill.flush()
        except OSError:  # a full disk: the copy stays in memory
            spill.close()
            return cls._memory_copy(state)
        except BaseException:  # interrupted half-way: no open file left behind
            spill.close()
            raise
        return cls(None, spill, layout)

    @classmethod
    def _memory_copy(cls, state: Mapping[str, torch.Tensor]) -> "KeptWeights":
        return cls({k: v.detach().cpu().clone() for k, v in state.items()})

    @property
    def in_memory(self) -> bool:
        return self._spill is None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The kept state dict (read back from the file into fresh CPU tensors if it was written there)."""
        if self._spill is None:
            return dict(self._held or {})
        self._spill.seek(0)
        out = {}
        for name, dtype, shape in self._layout:
            tensor = torch.empty(shape, dtype=dtype)
            view = raw_bytes(tensor)
            if self._spill.readinto(view) != len(view):
                raise OSError("the temporary copy of the best weights came back short")
            out[name] = tensor
        return out

    def close(self) -> None:
        """Let go of the copy (the file disappears with it)."""
        if self._spill is not None:
            self._spill.close()
        self._held, self._spill, self._layout = None, None, []
