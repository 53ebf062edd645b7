"""The live training panel: a training started from the dashboard runs in a worker thread that posts
each training event as a small message; the panel folds them into a :class:`TrainingTracker`."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Static

from diffrec_cli.config import Settings
from diffrec_cli.render.charts import progress_bar
from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.training.events import TrainingStarted
from diffrec_cli.training.tracker import TrainingTracker
from diffrec_cli.tui.messages import TrainingDone, TrainingUpdate
from diffrec_cli.tui.widgets import LossSparkline, StepLossBars


def progress_lines(tracker: TrainingTracker, width: int) -> Text:
    """Two lines: epochs and steps of this epoch, each with a bar; elapsed time and ETA."""
    label_width = 22
    bar_width = max(5, width - label_width - 2)
    text = Text()
    epochs_line = f"epoch {tracker.epochs_done:>3}/{tracker.epochs:<3}"
    text.append(f"{epochs_line:<{label_width}}")
    text.append(progress_bar(tracker.epochs_done, tracker.epochs, bar_width), style="cyan")
    step = tracker.step if tracker.epoch > tracker.epochs_done else (tracker.steps_per_epoch if tracker.epochs_done else 0)
    steps_line = f"\nstep  {step:>3}/{tracker.steps_per_epoch:<3}"
    text.append(f"{steps_line:<{label_width + 1}}")
    text.append(progress_bar(step, tracker.steps_per_epoch, bar_width), style="green")
    eta = tracker.eta_seconds()
    text.append(f"\nelapsed {format_seconds(tracker.elapsed)}   ETA ≤ {format_seconds(eta)}   {tracker.state}",
                style="dim")
    return text


def metrics_line(tracker: TrainingTracker) -> Text:
    last, best = tracker.last, tracker.best
    if last is None:
        return Text("no evaluation yet", style="dim")
    m = last.metric
    text = Text(f"epoch {last.epoch}: valid {m} {last.valid.get(m, float('nan')):.4f}  "
                f"test {last.test.get(m, float('nan')):.4f}")
    if best is not None:
        text.append(f"\nbest so far: valid {m} {best.valid.get(m, float('nan')):.4f}  "
                    f"test {best.test.get(m, float('nan')):.4f}  (epoch {best.epoch})", style="bold green")
    return text


class LivePanel(Vertical):
    """Progress with ETA, loss per optimizer step, per-diffusion-step loss bars, latest and best metrics."""

    DEFAULT_CSS = """
    LivePanel { height: 1fr; padding: 0 1; }
    LivePanel #live-head { height: 2; }
    LivePanel #live-progress { height: 3; }
    LivePanel .caption { color: $text-muted; height: 1; }
    LivePanel #live-steps { height: 1fr; min-height: 3; max-height: 9; }
    LivePanel #live-metrics { height: 2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tracker = TrainingTracker()

    def compose(self) -> ComposeResult:
        yield Static("starting…", id="live-head")
        yield Static(id="live-progress")
        yield Label("loss per optimizer step", classes="caption")
        yield LossSparkline(id="live-loss")
        yield Label("mean loss per diffusion step t (importance-sampling history)", classes="caption")
        yield StepLossBars(id="live-steps")
        yield Static(id="live-metrics")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.redraw_progress)  # elapsed time moves between events too

    def apply(self, event: Any) -> None:
        self.tracker(event)
        self.redraw()

    def redraw(self) -> None:
        t = self.tracker
        if t.started is not None:
            s = t.started
            head = Text.assemble((f"{s.model} on {s.dataset}", "bold"), f"  run {s.run_id}" if s.run_id else "")
            head.append(f"\n{s.parameters:,} parameters  {s.device}  {s.precision}", style="dim")
            self.query_one("#live-head", Static).update(head)
        self.redraw_progress()
        self.query_one("#live-loss", LossSparkline).set_values(t.losses)
        bars = self.query_one("#live-steps", StepLossBars)
        if bars.values != t.step_losses:
            bars.set_values(t.step_losses)
        self.query_one("#live-metrics", Static).update(metrics_line(t))

    def redraw_progress(self) -> None:
        self.query_one("#live-progress", Static).update(progress_lines(self.tracker, max(20, self.size.width - 2)))


class LiveTrainingScreen(Screen):
    """A training started in the dashboard; stays installed, so leaving it does not stop the training."""

    BINDINGS = [
        Binding("x", "stop", "Stop training"),
        Binding("o", "open_run", "Open run"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.stop_requested = threading.Event()
        self.run_id: str | None = None
        self.done = False
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield LivePanel(id="live")
        yield Footer()

    def on_mount(self) -> None:
        self._train()

    @property
    def running(self) -> bool:
        return not self.done

    @work(thread=True, exclusive=True, group="train")
    def _train(self) -> None:
        from diffrec_cli.errors import DiffrecError
        from diffrec_cli.training.job import train

        try:
            outcome = train(self.settings, self.app.registry(), home=self.app.home,
                            reporter=lambda event: self.post_message(TrainingUpdate(event)),
                            should_stop=self.stop_requested.is_set)
        except DiffrecError as exc:
            self.post_message(TrainingDone(None, str(exc)))
        except Exception as exc:  # shown in the panel: a failed training must not take the dashboard down
            self.post_message(TrainingDone(None, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(TrainingDone(outcome.run.id))

    def on_training_update(self, message: TrainingUpdate) -> None:
        if self.run_id is None:
            self.run_id = message.event.run_id if isinstance(message.event, TrainingStarted) else None
        self.query_one(LivePanel).apply(message.event)

    def on_training_done(self, message: TrainingDone) -> None:
        self.done = True
        self.error = message.error
        self.run_id = message.run_id or self.run_id
        if message.error:
            self.query_one("#live-metrics", Static).update(Text(f"training failed: {message.error}", style="bold red"))
            self.notify(message.error, title="training failed", severity="error")
        else:
            self.notify(f"run {self.run_id}: {self.query_one(LivePanel).tracker.state}", title="training done")
        self.app.training_finished(self)

    def action_stop(self) -> None:
        if not self.done:
            self.stop_requested.set()
            self.notify("stopping after this optimizer step; the best checkpoint is kept")

    def action_open_run(self) -> None:
        if self.run_id:
            self.app.open_run(self.run_id)
