"""Stopping a long command on request: Ctrl-C (SIGINT) or SIGTERM (a scheduler, ``kill``, ``timeout``).

Both stop training the same clean way (the loop keeps its best checkpoint and the run is marked stopped);
the exit status tells scripts which signal asked: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType

EXIT_SIGINT, EXIT_SIGTERM = 130, 143


class StopSignals:
    """While active, SIGTERM interrupts like Ctrl-C; ``exit_code`` is the status a stopped command returns."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = None

    def __enter__(self) -> "StopSignals":
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_term)
        except ValueError:  # not the main thread (the dashboard's workers): nothing to install
            self._previous = None
        return self

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        raise KeyboardInterrupt

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.received == signal.SIGTERM else EXIT_SIGINT
