"""A small form to start a training from the dashboard: model, dataset, epochs and key=value settings."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from diffrec_cli.config import Settings, parse_sets, resolve_settings
from diffrec_cli.errors import DiffrecError


class TrainForm(ModalScreen[Settings]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    TrainForm { align: center middle; }
    TrainForm > Vertical { width: 72; height: auto; border: round $accent; padding: 0 1; background: $surface; }
    TrainForm Horizontal { height: 1; margin: 1 0 0 0; }
    TrainForm Horizontal Label { width: 10; }
    TrainForm Input, TrainForm Input:focus { border: none; height: 1; padding: 0 1; width: 1fr; }
    TrainForm Input { background: $boost; }
    TrainForm Input:focus { background: $accent 30%; }
    TrainForm #form-error { color: $error; height: auto; }
    """

    def __init__(self, model: str = "diffrec", dataset: str = "demo", epochs: str = "20", sets: str = "") -> None:
        super().__init__()
        self.defaults = (model, dataset, epochs, sets)

    def compose(self) -> ComposeResult:
        model, dataset, epochs, sets = self.defaults
        with Vertical():
            yield Label("[b]train a model[/b]  (enter: start, escape: cancel)")
            for name, value, hint in (("model", model, "a registered model"), ("dataset", dataset, "a prepared dataset"),
                                      ("epochs", epochs, "maximum epochs"),
                                      ("settings", sets, "key=value ... (e.g. steps=5 dims=[32])")):
                with Horizontal():
                    yield Label(name)
                    yield Input(value, placeholder=hint, id=f"form-{name}")
            yield Static(id="form-error")

    def settings(self) -> Settings:
        value = {name: self.query_one(f"#form-{name}", Input).value.strip()
                 for name in ("model", "dataset", "epochs", "settings")}
        if not value["epochs"].isdigit():
            raise DiffrecError(f"epochs must be a positive whole number, got {value['epochs']!r}")
        return resolve_settings({}, parse_sets(value["settings"].split()), model=value["model"] or None,
                                dataset=value["dataset"] or None, epochs=int(value["epochs"]))

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
