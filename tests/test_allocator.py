"""glibc's thresholds fixed for training: a step's freed buffers stay mapped for the next step; a user's
own malloc settings are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffrec_cli.training import allocator

GLIBC = allocator._glibc()

# Two 12 MiB blocks allocated, written and freed, round after round, as a training step's tensors are:
# prints the page faults per round after a warm-up.
ROUNDS = """
import ctypes, resource, sys
from diffrec_cli.training.allocator import keep_step_buffers
print(keep_step_buffers() if sys.argv[1] == "kept" else "default")
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 12 << 20

def step():
    a, b = libc.malloc(size), libc.malloc(size)
    libc.memset(a, 1, size)
    libc.memset(b, 1, size)
    libc.free(b)
    libc.free(a)

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_round(mode: str) -> tuple[str, float]:
    # this environment without the allocator settings a shell may carry
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "LD_PRELOAD")}
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, env=env, check=True)
    decision, faults = out.stdout.split()
    return decision, float(faults)


def _huge_pages_always() -> bool:
    """Transparent huge pages behind every heap: then a page given back costs 1 fault per 2 MiB, not 512."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's (Linux)")
def test_freed_step_buffers_stay_mapped_with_the_fixed_thresholds():
    decision, kept = _faults_per_round("kept")
    assert decision == "True" and kept < 50
    decision, default = _faults_per_round("default")
    assert decision == "default"
    # glibc's adaptive default gives the 24 MiB back each round: 6,144 small pages fault in again
    assert default > (2000 if not _huge_pages_always() else kept)


def test_user_settings_are_left_alone_and_the_decision_is_made_once(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_glibc", lambda: calls.append(1) or True)
    for environ in ({"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "0"},
                    {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}):
        monkeypatch.setattr(allocator, "_applied", [])
        assert allocator.keep_step_buffers(environ) is False
        assert allocator.keep_step_buffers({}) is False  # decided once per process
    assert calls == []
    monkeypatch.setattr(allocator, "_applied", [])
    monkeypatch.setattr(allocator, "_glibc", lambda: False)
    assert allocator.keep_step_buffers({}) is False
