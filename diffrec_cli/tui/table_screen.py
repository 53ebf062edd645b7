"""The shape shared by the list screens (runs, datasets, comparison): one row table between a header and a footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header


class TableScreen(Screen):
    """A screen around one row-cursor table whose columns are (key, label) pairs.

    Subclasses set ``TABLE_ID`` and ``COLUMNS`` (or add columns themselves later), put their other
    widgets in :meth:`compose_above` and :meth:`compose_below`, and define ``action_reload``.
    Textual runs the ``on_mount`` of every class of a screen, so a subclass's own ``on_mount`` adds
    to this one instead of replacing it.
    """

    TABLE_ID = "table"
    COLUMNS: tuple[tuple[str, str], ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_above()
        yield DataTable(id=self.TABLE_ID, cursor_type="row", zebra_stripes=True)
        yield from self.compose_below()
        yield Footer()

    def compose_above(self) -> ComposeResult:
        yield from ()

    def compose_below(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        table = self.query_one(f"#{self.TABLE_ID}", DataTable)
        for key, label in self.COLUMNS:
            table.add_column(label, key=key)
        table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        raise NotImplementedError
