"""A small form to start a training from the dashboard: model and dataset chosen from what exists, epochs
(the trainer's default to begin with) and key=value settings."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Select, Static

from diffrec_cli.config import Settings, TrainConfig, parse_sets, resolve_settings
from diffrec_cli.errors import DiffrecError


class TrainForm(ModalScreen[Settings]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#form-epochs"  # enter in a text field starts; the lists open with enter too

    DEFAULT_CSS = """
    TrainForm { align: center middle; }
    TrainForm > Vertical { width: 72; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    TrainForm Horizontal { height: auto; }
    TrainForm Horizontal.field { margin: 1 0 0 0; }
    TrainForm Horizontal Label { width: 10; padding: 1 0 0 0; }
    TrainForm Horizontal.field Label { padding: 0; }
    TrainForm Select { width: 1fr; }
    TrainForm Input, TrainForm Input:focus { border: none; height: 1; padding: 0 1; width: 1fr; }
    TrainForm Input { background: $boost; }
    TrainForm Input:focus { background: $accent 30%; }
    TrainForm #form-error { color: $error; height: auto; }
    """

    def __init__(self, models: list[str], datasets: list[str], *, model: str = TrainConfig.model,
                 dataset: str = TrainConfig.dataset, epochs: int = TrainConfig.epochs, sets: str = "") -> None:
        """``models``: the registered model names; ``datasets``: the prepared datasets (``demo`` is built on
        first use, so it is always offered)."""
        super().__init__()
        self.models = sorted(set(models))
        self.datasets = sorted({*datasets, "demo"})
        self.defaults = (model if model in self.models else self.models[0], dataset if dataset in self.datasets
                         else self.datasets[0], str(epochs), sets)

    def compose(self) -> ComposeResult:
        model, dataset, epochs, sets = self.defaults
        with Vertical():
            yield Label("[b]train a model[/b]  (tab: next field, enter: start, escape: cancel)")
            for name, choices, value in (("model", self.models, model), ("dataset", self.datasets, dataset)):
                with Horizontal():
                    yield Label(name)
                    yield Select([(c, c) for c in choices], value=value, allow_blank=False, id=f"form-{name}")
            for name, value, hint in (("epochs", epochs, "maximum epochs"),
                                      ("settings", sets, "key=value ... (e.g. steps=5 dims=[32])")):
                with Horizontal(classes="field"):
                    yield Label(name)
                    yield Input(value, placeholder=hint, id=f"form-{name}")
            yield Static(id="form-error")

    def settings(self) -> Settings:
        model = str(self.query_one("#form-model", Select).value)
        dataset = str(self.query_one("#form-dataset", Select).value)
        epochs = self.query_one("#form-epochs", Input).value.strip()
        sets = self.query_one("#form-settings", Input).value.strip()
        if not epochs.isdigit():
            raise DiffrecError(f"epochs must be a positive whole number, got {epochs!r}")
        return resolve_settings({}, parse_sets(sets.split()), model=model, dataset=dataset, epochs=int(epochs))

    @on(Input.Submitted)
    def submit(self) -> None:
        try:
            settings = self.settings()
        except DiffrecError as exc:
            self.query_one("#form-error", Static).update(Text(str(exc)))
            return
        self.dismiss(settings)

    def action_cancel(self) -> None:
        self.dismiss(None)
