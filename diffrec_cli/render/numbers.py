"""Numbers as short text: durations and values squeezed beside a chart."""

from __future__ import annotations


def format_seconds(seconds: float | None) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on; ``–`` when unknown."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short_number(value: float) -> str:
    """At most about six characters: three or four significant digits, exponent form when very large or small."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000 or magnitude < 0.001:
        return f"{value:.1e}"
    return f"{value:.4g}" if magnitude < 1 else f"{value:.3g}"
