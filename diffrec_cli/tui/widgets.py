"""Small Textual widgets around the charts in :mod:`diffrec_cli.render.charts`.

Each keeps the data it draws in a plain attribute (``values``, ``series``) so tests can assert on what
a chart received, not on pixels.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widget import Widget

from diffrec_cli.render.charts import LineChart, Series, StepBars, finite, sparkline
from diffrec_cli.render.numbers import short_number


class LossSparkline(Widget):
    """Loss per optimizer step: a sparkline over the full width plus first/min/last values."""

    DEFAULT_CSS = "LossSparkline { height: 2; }"

    def __init__(self, values: Sequence[float] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float] = list(values)

    def set_values(self, values: Sequence[float]) -> None:
        # Kept by reference: a live panel hands over its growing list on every step without copying it.
        self.values = values if isinstance(values, list) else list(values)
        self.refresh()

    def render(self) -> Text:
        good = finite(self.values)
        if not good:
            return Text("no optimizer steps yet", style="dim")
        text = Text(sparkline(self.values, max(1, self.size.width)), style="green")
        text.append(f"\n{len(self.values)} steps  first {short_number(good[0])}  min {short_number(min(good))}"
                    f"  last {short_number(good[-1])}", style="dim")
        return text


class StepLossBars(Widget):
    """Mean loss per diffusion step t as vertical bars; missing steps show as dots."""

    DEFAULT_CSS = "StepLossBars { height: 6; }"

    def __init__(self, values: Sequence[float | None] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float | None] = list(values)

    def set_values(self, values: Sequence[float | None]) -> None:
        self.values = list(values)
        self.refresh()

    @property
    def filled(self) -> int:
        return sum(v is not None for v in self.values)

    def render(self) -> StepBars:
        return StepBars(self.values, height=max(1, self.size.height - 1))


class CurveChart(Widget):
    """Metric curves over epochs (one line per series)."""

    DEFAULT_CSS = "CurveChart { height: 12; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: list[Series] = []

    def set_series(self, series: list[Series]) -> None:
        self.series = series
        self.refresh()

    def render(self) -> LineChart:
        return LineChart(self.series, height=max(4, self.size.height))
