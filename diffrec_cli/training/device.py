"""Where and in what precision training runs, and the seeding that makes CPU runs repeatable."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from diffrec_cli.errors import DiffrecError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DiffrecError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DiffrecError("device cuda requested but CUDA is not available")
    return device


def bf16_supported(device: torch.device) -> bool:
    """bf16 only pays off with hardware support: CUDA bf16, or CPU AMX/AVX512-BF16 units."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    if precision == "bf16" and bf16_supported(device):
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext
