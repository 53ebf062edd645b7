"""How much memory is free, and refusing work that cannot fit before it allocates anything.

The kernel kills a process that takes more memory than there is, without a message; an estimate made
beforehand turns that into a one-line error with the numbers. Free memory is the smaller of the system's
``MemAvailable`` and what the process's control group (a container's limit) has left.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffrec_cli.errors import DiffrecError, Hint

# Refuse estimates above this share of the free memory: the estimates leave out the interpreter, the
# libraries and allocator overheads.
USABLE_SHARE = 0.9


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What the control group may still take (cgroup v2, then v1); None without a limit."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (Path("/sys/fs/cgroup") / limit_file).read_text().strip()
            usage = int((Path("/sys/fs/cgroup") / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - usage)
    return None


def available_bytes() -> int | None:
    """Bytes this process can still allocate without the kernel killing it; None when unknown."""
    known = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    return min(known) if known else None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover - the loop always returns


def check_fits(needed: float, what: str, hint: Hint | None = None, *, free: int | None = None,
               memory: str = "memory") -> None:
    """Refuse (DiffrecError, with the estimate) when ``what`` would need more ``memory`` than is ``free``
    (default: :func:`available_bytes`)."""
    free = available_bytes() if free is None else free
    if free is not None and needed > USABLE_SHARE * free:
        raise DiffrecError(f"{what} would need about {format_bytes(needed)} of {memory}, but only "
                           f"{format_bytes(free)} is free", hint=hint)
