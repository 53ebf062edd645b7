"""Two or more runs side by side: the settings that differ, then metrics with the best value highlighted."""

from __future__ import annotations

import json

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.tui.messages import DetailLoaded
from diffrec_cli.tui.records import CompareRow, RunDetail, compare_rows, read_detail
from diffrec_cli.tui.runs_screen import short_id
from diffrec_cli.tui.table_screen import TableScreen

BEST_STYLE = "bold reverse green"


def format_value(value, row: CompareRow) -> str:
    if value is None:
        return "–"
    if row.label == "wall time" and isinstance(value, (int, float)):
        return format_seconds(value)
    if isinstance(value, float):
        return f"{value:.4f}" if row.section == "metrics" else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class CompareScreen(TableScreen):
    TABLE_ID = "compare"  # no fixed COLUMNS: one per run, added once the runs are read

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "reload", "Refresh")]

    DEFAULT_CSS = """
    CompareScreen #compare-legend { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    CompareScreen #compare { height: 1fr; }
    """

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.details: dict[str, RunDetail] = {}
        self.rows: list[CompareRow] = []

    def compose_above(self) -> ComposeResult:
        yield Static(id="compare-legend")

    def action_reload(self) -> None:
        self.details = {}
        self._load()

    @work(thread=True, exclusive=True, group="read-compare")
    def _load(self) -> None:
        for run_id in self.run_ids:
            self.post_message(DetailLoaded(read_detail(self.app.home.runs_dir / run_id, self.app.now)))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        self.details[message.detail.summary.id] = message.detail
        if len(self.details) == len(self.run_ids):
            self.draw()

    def column_label(self, run_id: str) -> str:
        s = self.details[run_id].summary
        return f"{s.model}/{s.dataset} {short_id(run_id)}"

    def draw(self) -> None:
        details = [self.details[r] for r in self.run_ids]
        self.rows = compare_rows(details)
        table = self.query_one("#compare", DataTable)
        table.clear(columns=True)
        table.add_column("", key="label")
        for run_id in self.run_ids:
            table.add_column(self.column_label(run_id), key=run_id)
        section = None
        if not any(r.section == "config" for r in self.rows):
            table.add_row(Text("settings", style="bold underline"), *[""] * len(self.run_ids), key="section-config")
            table.add_row(Text("(identical)", style="dim"), *[""] * len(self.run_ids), key="same")
        for row in self.rows:
            if row.section != section:
                section = row.section
                title = "settings that differ" if section == "config" else "metrics (best highlighted)"
                table.add_row(Text(title, style="bold underline"), *[""] * len(self.run_ids), key=f"section-{section}")
            cells = []
            for j, value in enumerate(row.values):
                text = format_value(value, row)
                cells.append(Text(("★ " if j == row.best else "") + text, justify="right",
                                  style=BEST_STYLE if j == row.best else ""))
            table.add_row(row.label, *cells, key=row.label)
        legend = Text("comparing ")
        for n, run_id in enumerate(self.run_ids):
            legend.append(("" if n == 0 else ", ") + run_id, style="bold")
            problems = self.details[run_id].problems
            if problems:
                legend.append(f" ({problems[0]})", style="red")
        self.query_one("#compare-legend", Static).update(legend)

    def best_of(self, label: str) -> str | None:
        """The run id holding the best value of a metric row (None when there is no single best)."""
        row = next((r for r in self.rows if r.label == label), None)
        return self.run_ids[row.best] if row is not None and row.best is not None else None
