"""Terminal charts as rich renderables: a sparkline, vertical bars per diffusion step, a braille line chart.

Rich only (no Textual), so ``diffrec train``'s rich panel and the dashboard's widgets draw the same
charts. Every chart fits the width it is given and degrades to a line of text when there is no data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from diffrec_cli.render.numbers import short_number

SPARK = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▁▂▃▄▅▆▇█"
SERIES_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "red")


def finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def bucket(values: Sequence[float | None], width: int) -> list[float | None]:
    """At most ``width`` values: means over consecutive groups (None where a group has no value)."""
    n = len(values)
    if width <= 0:
        return []
    if n <= width:
        return list(values)
    out: list[float | None] = []
    for i in range(width):
        group = finite(values[i * n // width:(i + 1) * n // width])
        out.append(sum(group) / len(group) if group else None)
    return out


def sparkline(values: Sequence[float | None], width: int) -> str:
    """One character per value (bucketed to ``width``), scaled between the minimum and maximum."""
    points = bucket(values, width)
    good = finite(points)
    if not good:
        return ""
    lo, hi = min(good), max(good)
    span = hi - lo
    chars = []
    for v in points:
        if v is None or not math.isfinite(v):
            chars.append(" ")
        else:
            level = 0 if span <= 0 else int((v - lo) / span * (len(SPARK) - 1) + 0.5)
            chars.append(SPARK[level])
    return "".join(chars)


@dataclass
class StepBars:
    """Vertical bars, one per diffusion step t (grouped when they do not fit), scaled from 0 to the maximum.

    Steps with no loss recorded yet show a dot on the baseline, so the bars visibly fill as the
    importance-sampling history fills.
    """

    values: Sequence[float | None]
    height: int = 5
    style: str = "cyan"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        height = max(1, options.height - 1) if options.height else self.height
        n = len(self.values)
        if n == 0:
            yield Text("no diffusion steps (this model has none)", style="dim")
            return
        axis = 7
        room = max(1, width - axis)
        values = bucket(self.values, room)
        per_bar = max(1, min(3, room // len(values)))
        top = max(finite(values), default=0.0)
        style, dim = Style.parse(self.style), Style.parse("dim")
        for row in range(height):  # row 0 is the top
            label = short_number(top) if row == 0 and top > 0 else ""
            yield Segment(f"{label:>{axis - 1}} ", dim)
            floor = (height - row - 1) * 8  # eighths below this row
            for v in values:
                if v is None:
                    cell = "·" if row == height - 1 else " "
                    yield Segment(cell * per_bar, dim)
                    continue
                eighths = int(round(v / top * height * 8)) if top > 0 else 0
                if row == height - 1:
                    eighths = max(eighths, 1)  # a recorded value always shows
                yield Segment(EIGHTHS[max(0, min(8, eighths - floor))] * per_bar, style)
            yield Segment.line()
        used = len(values) * per_bar
        first, last = "t=1", f"t={n}"
        yield Segment(" " * axis, dim)
        yield Segment(first + last.rjust(max(1, used - len(first))), dim)
        yield Segment.line()


# Braille dots: a cell is 2 dots wide and 4 high; bit for (column, row).
_BRAILLE = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y)
    style: str = "cyan"


@dataclass
class LineChart:
    """Lines over a shared x axis (epochs), drawn with braille dots; a legend below."""

    series: list[Series]
    height: int = 10
    y_format: str = "{:.4f}"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        total_height = options.height or self.height
        points = [p for s in self.series for p in s.points if math.isfinite(p[1])]
        if not points:
            yield Text("no evaluations yet", style="dim")
            return
        rows = max(2, total_height - 3)  # x axis, its labels and the legend below
        x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
        y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
        if y_hi == y_lo:
            y_lo, y_hi = y_lo - 0.5 * (abs(y_lo) or 1), y_hi + 0.5 * (abs(y_hi) or 1)
        labels = [self.y_format.format(v) for v in (y_hi, y_lo)]
        axis = max(len(s) for s in labels) + 1
        cols = max(4, width - axis - 1)
        dots_w, dots_h = cols * 2, rows * 4
        grid = [[0] * cols for _ in range(rows)]
        owner: list[list[int | None]] = [[None] * cols for _ in range(rows)]

        def to_dot(x: float, y: float) -> tuple[int, int]:
            dx = 0 if x_hi == x_lo else round((x - x_lo) / (x_hi - x_lo) * (dots_w - 1))
            dy = round((y_hi - y) / (y_hi - y_lo) * (dots_h - 1))
            return dx, dy

        def plot(dx: int, dy: int, who: int) -> None:
            cx, cy = dx // 2, dy // 4
            grid[cy][cx] |= _BRAILLE[dx % 2][dy % 4]
            owner[cy][cx] = who

        for who, s in enumerate(self.series):
            dots = [to_dot(x, y) for x, y in s.points if math.isfinite(y)]
            for (x0, y0), (x1, y1) in zip(dots, dots[1:]):
                steps = max(abs(x1 - x0), abs(y1 - y0), 1)
                for i in range(steps + 1):
                    plot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), who)
            if len(dots) == 1:
                plot(*dots[0], who)
        dim = Style.parse("dim")
        styles = [Style.parse(s.style) for s in self.series]
        for r in range(rows):
            label = labels[0] if r == 0 else labels[1] if r == rows - 1 else ""
            yield Segment(f"{label:>{axis - 1}} ┤" if label else " " * axis + "│", dim)
            for c in range(cols):
                who = owner[r][c]
                yield Segment(chr(0x2800 + grid[r][c]) if grid[r][c] else " ", styles[who] if who is not None else None)
            yield Segment.line()
        left, right = f"{x_lo:g}", f"epoch {x_hi:g}"
        yield Segment(" " * axis + "└" + "─" * (cols) + "\n", dim)
        yield Segment(" " * (axis + 1) + left + right.rjust(max(1, cols - len(left))) + "\n", dim)
        legend = Text(" " * (axis + 1))
        for s in self.series:
            legend.append("━━ ", style=s.style)
            legend.append(f"{s.name}   ")
        yield legend


def progress_bar(done: float, total: float, width: int) -> str:
    """A bar of ``width`` cells, eighth-cell resolution."""
    if width <= 0:
        return ""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    eighths = int(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    return bar + " " * (width - len(bar))
