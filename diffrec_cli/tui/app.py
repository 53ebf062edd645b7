"""``diffrec dashboard``: browse, compare and watch runs in the terminal.

:func:`make_app` builds the app for the CLI and for tests alike. Screens read the data home in worker
threads and get small dataclass messages back (:mod:`diffrec_cli.tui.messages`); the UI never waits on
a file or on training.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from diffrec_cli.config import Settings
from diffrec_cli.data.store import DataHome
from diffrec_cli.home import shown_path
from diffrec_cli.tui.compare_screen import CompareScreen
from diffrec_cli.tui.datasets_screen import DatasetsScreen
from diffrec_cli.tui.detail_screen import RunDetailScreen
from diffrec_cli.tui.live import LiveTrainingScreen
from diffrec_cli.tui.records import COLUMNS
from diffrec_cli.tui.runs_screen import RunsScreen
from diffrec_cli.tui.train_form import TrainForm


def default_registry() -> Any:
    from diffrec_cli.plugins import get_plugins

    return get_plugins().registry


class DashboardApp(App):
    TITLE = "diffrec dashboard"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+p", "command_palette", "Commands", show=False),
    ]

    def __init__(self, home: DataHome, *, registry: Callable[[], Any] = default_registry,
                 refresh_seconds: float = 2.0, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.home = home
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self.now = now
        self.sub_title = shown_path(home.root)
        self.live: LiveTrainingScreen | None = None

    def on_mount(self) -> None:
        self.push_screen(RunsScreen())

    @property
    def runs_screen(self) -> RunsScreen:
        return next(s for s in self.screen_stack if isinstance(s, RunsScreen))

    # ----- navigation (also reached from the command palette) ----------------------------------------
    def open_run(self, run_id: str) -> None:
        self.push_screen(RunDetailScreen(run_id))

    def compare(self, run_ids: list[str]) -> None:
        self.push_screen(CompareScreen(run_ids))

    def action_datasets(self) -> None:
        if not isinstance(self.screen, DatasetsScreen):
            self.push_screen(DatasetsScreen())

    def action_runs(self) -> None:
        while len(self.screen_stack) > 2 and not isinstance(self.screen, RunsScreen):
            self.pop_screen()

    def action_train(self) -> None:
        """Show the running training, or ask for settings and start one."""
        if self.live is not None and self.live.running:
            if self.screen is not self.live:
                self.push_screen(self.live)
            return

        def start(settings: Settings | None) -> None:
            if settings is not None:
                self.start_training(settings)

        datasets = self.home.names()
        dataset = "demo" if "demo" in datasets or not datasets else datasets[0]
        self.push_screen(TrainForm(self.registry().names("model"), datasets, dataset=dataset), start)

    def start_training(self, settings: Settings) -> LiveTrainingScreen:
        if self.live is not None and self.live.running:
            raise RuntimeError("a training is already running in this dashboard")
        if self.live is not None and self.live not in self.screen_stack:
            self.uninstall_screen(self.live)
        self.live = LiveTrainingScreen(settings)
        self.install_screen(self.live, name=f"live-{id(self.live)}")
        self.push_screen(self.live)
        return self.live

    def training_finished(self, screen: LiveTrainingScreen) -> None:
        self.runs_screen.action_reload()

    def action_quit(self) -> None:  # type: ignore[override]
        if self.live is not None and self.live.running:
            self.live.stop_requested.set()  # the worker thread ends after its current step
        self.exit()

    # ----- command palette ---------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Runs", "The table of every run", self.action_runs)
        yield SystemCommand("Datasets", "Prepared datasets and their statistics", self.action_datasets)
        yield SystemCommand("Train a model", "Start a training with a live panel (or show the running one)",
                            self.action_train)
        runs = self.runs_screen if any(isinstance(s, RunsScreen) for s in self.screen_stack) else None
        if runs is not None:
            yield SystemCommand("Compare marked runs", "Settings and metrics side by side", runs.action_compare)
            for key, label in COLUMNS:
                yield SystemCommand(f"Sort runs by {label}", f"Sort the runs table by {key}",
                                    lambda key=key: runs.sort_by(key), discover=False)
            for row in runs.rows:
                yield SystemCommand(f"Open run {row.id}", f"{row.model} on {row.dataset}, {row.status}",
                                    lambda run_id=row.id: self.open_run(run_id), discover=False)
        yield from super().get_system_commands(screen)


def make_app(home: DataHome | str | os.PathLike | None = None, **options: Any) -> DashboardApp:
    """The dashboard over a data home (``--home``, ``$DIFFREC_HOME`` or the default)."""
    return DashboardApp(home if isinstance(home, DataHome) else DataHome(home), **options)
