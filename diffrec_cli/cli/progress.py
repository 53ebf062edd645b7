"""Rich output for training: a live panel on a terminal, plain lines otherwise, nothing when quiet."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from diffrec_cli.render.charts import StepBars, sparkline
from diffrec_cli.render.numbers import short_number
from diffrec_cli.training.events import EpochFinished, Evaluated, StepFinished, TrainingFinished, TrainingStarted


class RichReporter:
    """Training progress through rich. ``live`` redraws one panel; otherwise one line per evaluation."""

    def __init__(self, console: Console, *, live: bool = True) -> None:
        self.console = console
        self.live_enabled = live and console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=console)
        self.epoch_task = None
        self.step_task = None
        self.step_losses: list[float | None] | None = None
        self.losses: list[float] = []  # loss per optimizer step, for the sparkline
        self.last_eval: Evaluated | None = None
        self.live: Live | None = None
        self.last_plain = 0.0

    def _panel(self) -> Group:
        parts: list[Any] = [self.progress]
        if self.losses:
            line = Text("loss per step ", style="dim")
            line.append(sparkline(self.losses, max(10, self.console.width - 30)), style="green")
            line.append(f" last {short_number(self.losses[-1])}", style="dim")
            parts.append(line)
        if self.step_losses:
            filled = sum(v is not None for v in self.step_losses)
            parts.append(Text(f"mean loss per diffusion step t (importance-sampling history, "
                              f"{filled}/{len(self.step_losses)} steps filled)", style="dim"))
            parts.append(StepBars(self.step_losses, height=4))
        if self.last_eval is not None:
            e = self.last_eval
            parts.append(Text(f"epoch {e.epoch}: valid {e.metric} {e.valid[e.metric]:.4f}   "
                              f"best {e.best_value:.4f} (epoch {e.best_epoch})"))
        return Group(*parts)

    def __call__(self, event: Any) -> None:
        if isinstance(event, TrainingStarted):
            self.console.print(f"training [bold]{event.model}[/] on [bold]{event.dataset}[/]: "
                               f"{event.parameters:,} parameters, device {event.device}, precision {event.precision}"
                               + (f", run {event.run_id}" if event.run_id else ""))
            for line in event.details:
                self.console.print(line, highlight=False)
            if event.first_epoch > 1:
                self.console.print(f"resumed after epoch {event.first_epoch - 1}", highlight=False)
            self.epoch_task = self.progress.add_task("epochs", total=event.epochs, completed=event.first_epoch - 1,
                                                     info="")
            self.step_task = self.progress.add_task("steps ", total=event.steps_per_epoch, info="")
            if self.live_enabled:
                self.live = Live(console=self.console, refresh_per_second=8, transient=False,
                                 get_renderable=self._panel)  # redrawn from the current state on each refresh
                self.live.start()
        elif isinstance(event, StepFinished):
            self.losses.append(event.loss)
            if event.step == 1:
                self.progress.reset(self.step_task)
            self.progress.update(self.step_task, completed=event.step, info=f"loss {event.loss:.4g}")
        elif isinstance(event, EpochFinished):
            self.step_losses = event.step_losses
            self.progress.update(self.epoch_task, completed=event.epoch, info=f"epoch loss {event.loss:.4g}")
            if self.live:
                self.live.update(self._panel())
        elif isinstance(event, Evaluated):
            self.last_eval = event
            if self.live:
                self.live.update(self._panel())
            else:
                mark = " *" if event.is_best else ""
                self.console.print(f"epoch {event.epoch}: valid {event.metric} {event.valid[event.metric]:.4f} "
                                   f"test {event.test[event.metric]:.4f} ({event.seconds:.1f}s){mark}", highlight=False)
        elif isinstance(event, TrainingFinished):
            if self.live:
                self.live.update(self._panel())
                self.live.stop()
            how = "interrupted" if event.interrupted else ("early stop" if event.stopped_early else "done")
            self.console.print(f"{how} after {event.epochs_run} epochs in {event.seconds:.1f}s; "
                               f"best epoch {event.best_epoch}")

