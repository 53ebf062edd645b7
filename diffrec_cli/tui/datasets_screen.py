"""The prepared datasets in the data home, with the statistics of ``diffrec data info``."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from diffrec_cli.render.datasets import dataset_info_table
from diffrec_cli.tui.messages import DatasetsLoaded
from diffrec_cli.tui.records import DatasetInfo, list_datasets
from diffrec_cli.tui.table_screen import TableScreen

COLUMNS = (("name", "name"), ("users", "users"), ("items", "items"), ("train", "train"), ("valid", "valid"),
           ("test", "test"), ("density", "density"))


def info_table(info: DatasetInfo) -> Table:
    """What ``diffrec data info NAME`` prints, its title at the left of the panel."""
    table = dataset_info_table(info.name, info.meta)
    table.title_justify = "left"
    return table


class DatasetsScreen(TableScreen):
    TABLE_ID = "datasets"
    COLUMNS = COLUMNS  # this module's (key, label) pairs, for TableScreen.on_mount

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "reload", "Refresh")]

    DEFAULT_CSS = """
    DatasetsScreen #datasets { height: auto; max-height: 50%; }
    DatasetsScreen #dataset-info { height: 1fr; padding: 1 1 0 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.datasets: list[DatasetInfo] = []

    def compose_below(self) -> ComposeResult:
        yield Static(id="dataset-info")

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="read-datasets")
    def _load(self) -> None:
        self.post_message(DatasetsLoaded(list_datasets(self.app.home)))

    def on_datasets_loaded(self, message: DatasetsLoaded) -> None:
        self.datasets = message.datasets
        table = self.query_one("#datasets", DataTable)
        table.clear()
        for info in self.datasets:
            c = info.counts
            if info.error:
                table.add_row(info.name, Text("error", style="bold red"), *["–"] * 5, key=info.name)
                continue
            table.add_row(info.name, *[Text(f"{c.get(k, 0):,}", justify="right")
                                       for k in ("users", "items", "train", "valid", "test")],
                          Text(f"{c.get('density', 0):.3%}", justify="right"), key=info.name)
        if not self.datasets:
            self.query_one("#dataset-info", Static).update(
                f"no datasets in {self.app.home.datasets_dir} (try 'diffrec data demo' or 'diffrec data import-split')")
        else:
            self.show(self.datasets[0])

    @on(DataTable.RowHighlighted, "#datasets")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        info = next((d for d in self.datasets if d.name == event.row_key.value), None)
        if info is not None:
            self.show(info)

    def show(self, info: DatasetInfo) -> None:
        body = Text(f"{info.name}: {info.error}", style="bold red") if info.error else info_table(info)
        self.query_one("#dataset-info", Static).update(body)
