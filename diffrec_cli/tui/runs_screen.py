"""The runs table: every run in the data home, sortable, filterable, refreshed as runs appear."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from diffrec_cli.runs import RUN_ID
from diffrec_cli.tui.messages import RunsLoaded
from diffrec_cli.tui.records import (COLUMNS, METRIC_KEYS, RunSummary, format_cell, list_summaries, matches,
                                     sort_summaries)
from diffrec_cli.tui.table_screen import TableScreen

STATUS_STYLES = {"running": "bold yellow", "finished": "green", "failed": "bold red", "stopped": "magenta",
                 "crashed": "bold red", "error": "bold red"}
NUMERIC = {"best_epoch", *METRIC_KEYS, "parameters", "seconds"}


def short_id(run_id: str) -> str:
    """The random suffix of a generated run id (the date is in its own column); other names as they are."""
    found = RUN_ID.match(run_id)
    return found.group(3) if found else run_id[:14]


class RunsScreen(TableScreen):
    TABLE_ID = "runs"
    COLUMNS = COLUMNS  # this module's (key, label) pairs, for TableScreen.on_mount

    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("d", "app.datasets", "Data"),
        Binding("t", "app.train", "Train"),
        Binding("r", "reload", "Refresh", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    DEFAULT_CSS = """
    RunsScreen #filter { height: 1; border: none; padding: 0 1; }
    RunsScreen #runs { height: 1fr; }
    RunsScreen #runs-status { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunSummary] = []
        self.shown: list[RunSummary] = []
        self.sort_key, self.reverse = "started", True  # newest first
        self.filter_text = ""
        self.marked: list[str] = []
        self._shown: tuple = ()

    def compose_above(self) -> ComposeResult:
        yield Input(placeholder="/ filter: model or dataset (model:x dataset:y status:z)", id="filter")

    def compose_below(self) -> ComposeResult:
        yield Static(id="runs-status")

    def on_mount(self) -> None:
        self.set_interval(self.app.refresh_seconds, self.action_reload)

    # ----- reading (worker thread) ----------------------------------------------------------------
    def action_reload(self) -> None:
        self._read_runs()

    @work(thread=True, exclusive=True, group="read-runs")
    def _read_runs(self) -> None:
        self.post_message(RunsLoaded(list_summaries(self.app.home.runs_dir, self.app.now)))

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        self.rows = message.rows
        self.marked = [m for m in self.marked if any(r.id == m for r in self.rows)]
        self.populate()

    # ----- drawing --------------------------------------------------------------------------------
    def populate(self) -> None:
        self.shown = sort_summaries([r for r in self.rows if matches(r, self.filter_text)], self.sort_key, self.reverse)
        shown = (tuple(self.shown), tuple(self.marked), self.sort_key, self.reverse)
        if shown != self._shown:
            self._shown = shown
            table = self.query_one("#runs", DataTable)
            current = self.current_id()
            table.clear()
            for key, label in COLUMNS:
                arrow = (" ▼" if self.reverse else " ▲") if key == self.sort_key else ""
                table.columns[key].label = Text(label + arrow)
            for row in self.shown:
                table.add_row(*self.cells(row), key=row.id)
            if current is not None and any(r.id == current for r in self.shown):
                table.move_cursor(row=table.get_row_index(current))
        self.update_status()

    def cells(self, row: RunSummary) -> list[Text]:
        out = []
        for key, _ in COLUMNS:
            if key == "id":
                mark = "●" if row.id in self.marked else " "
                out.append(Text(mark + short_id(row.id), style="bold" if row.id in self.marked else ""))
            elif key == "status":
                out.append(Text(row.status, style=STATUS_STYLES.get(row.status, "")))
            else:
                out.append(Text(format_cell(row, key), justify="right" if key in NUMERIC else "left"))
        return out

    def update_status(self) -> None:
        current = self.current()
        if current is not None and current.error:
            text = Text(f"{current.id}: {current.error}", style="red")
        elif current is not None:
            text = Text(current.id)
        else:
            text = Text("no runs yet: press t to train one, or run 'diffrec train'" if not self.rows
                        else "no run matches the filter")
        text.append(f"   {len(self.shown)}/{len(self.rows)} runs", style="dim")
        if self.marked:
            text.append(f"   {len(self.marked)} marked", style="bold")
        self.query_one("#runs-status", Static).update(text)

    def current_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def current(self) -> RunSummary | None:
        run_id = self.current_id()
        return next((r for r in self.shown if r.id == run_id), None)

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self) -> None:
        self.update_status()

    # ----- actions --------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#runs")
    def action_open(self) -> None:
        current = self.current()
        if current is not None:
            self.app.open_run(current.id)

    def action_mark(self) -> None:
        run_id = self.current_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.populate()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space, then press c", severity="warning")
            return
        self.app.compare(list(self.marked))

    def action_sort(self) -> None:
        """Sort by the next column (the sort column's header shows ▲ or ▼)."""
        keys = [k for k, _ in COLUMNS]
        self.sort_by(keys[(keys.index(self.sort_key) + 1) % len(keys)])

    def action_reverse(self) -> None:
        self.sort_by(self.sort_key, not self.reverse)

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        if reverse is None:
            reverse = not self.reverse if key == self.sort_key else key in NUMERIC or key == "started"
        self.sort_key, self.reverse = key, reverse
        self.populate()

    @on(DataTable.HeaderSelected, "#runs")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        self.sort_by(str(event.column_key.value))

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.populate()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#filter", Input).value = ""
        self.query_one("#runs", DataTable).focus()
