"""Small pieces every baseline module uses."""

from __future__ import annotations

from diffrec_cli.errors import DiffrecError

# the learning rates of the paper's search spaces (§4.1.3)
LRS = [1e-5, 1e-4, 1e-3, 1e-2]


def check(condition: bool, message: str) -> None:
    """Reject a bad setting with the one-line error the CLI prints (exit code 2)."""
    if not condition:
        raise DiffrecError(message)
