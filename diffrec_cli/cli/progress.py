"""Rich output for training: a live panel on a terminal, plain lines otherwise, nothing when quiet.

Plain lines (``--no-live``, or output to a file, CI or nohup) come one per epoch, the evaluation's result
appended to its epoch's line, and every ``PLAIN_EVERY`` seconds within a long epoch::

    epoch 5/200: loss 0.1230 (12.3 s/epoch), eval 4.1 s: valid recall@20 0.1234 *
"""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from diffrec_cli.render.charts import StepBars, sparkline
from diffrec_cli.render.numbers import short_number
from diffrec_cli.training.events import EpochFinished, Evaluated, StepFinished, TrainingFinished, TrainingStarted


PLAIN_EVERY = 30.0  # seconds between progress lines within one epoch


class PlainLines:
    """The plain progress lines: one per epoch, the evaluation appended to it, and one every ``PLAIN_EVERY``
    seconds of a long epoch. An epoch's line is written as soon as the epoch ends, before its evaluation
    (which may take minutes), and ended by the evaluation's result or by whatever comes next."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.clock = console, clock
        self.epochs = 0
        self.open_line = False  # an epoch line waits for its evaluation
        self.last_line = clock()

    def write(self, text: str, *, end: str = "\n") -> None:
        self.console.print(text, end=end, highlight=False, soft_wrap=True)
        self.console.file.flush()
        self.last_line = self.clock()

    def close_line(self) -> None:
        if self.open_line:
            self.open_line = False
            self.write("")

    def __call__(self, event: Any) -> None:
        if isinstance(event, TrainingStarted):
            self.epochs, self.last_line = event.epochs, self.clock()
        elif isinstance(event, StepFinished):
            self.close_line()
            if self.clock() - self.last_line >= PLAIN_EVERY:
                self.write(f"epoch {event.epoch}/{self.epochs}: step {event.step}, loss {event.loss:.4f}")
        elif isinstance(event, EpochFinished):
            self.close_line()
            self.write(f"epoch {event.epoch}/{self.epochs}: loss {event.loss:.4f} ({event.seconds:.1f} s/epoch)",
                       end="")
            self.open_line = True
        elif isinstance(event, Evaluated):
            score = event.valid.get(event.metric, float("nan"))
            self.write(f"{',' if self.open_line else 'epoch ' + str(event.epoch) + ':'} eval {event.seconds:.1f} s: "
                       f"valid {event.metric} {score:.4f}{' *' if event.is_best else ''}")
            self.open_line = False
        elif isinstance(event, TrainingFinished):
            self.close_line()


class RichReporter:
    """Training progress through rich. ``live`` redraws one panel; otherwise plain lines (:class:`PlainLines`)."""

    def __init__(self, console: Console, *, live: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live_enabled = live and console.is_terminal
        self.plain = None if self.live_enabled else PlainLines(console, clock)
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

    def finish_bars(self, event: TrainingFinished) -> None:
        """Training has ended (maybe early): the bars stop at what ran, with no time remaining left frozen."""
        planned = self.progress.tasks[self.epoch_task].total
        for task in (self.epoch_task, self.step_task):
            done = self.progress.tasks[task].completed
            self.progress.update(task, total=max(done, 1), completed=max(done, 1))
            self.progress.stop_task(task)
        how = "interrupted" if event.interrupted else ("early stop" if event.stopped_early else "done")
        self.progress.update(self.epoch_task, info=f"{how} (of {planned:.0f} epochs)" if how != "done" else how)

    def __call__(self, event: Any) -> None:
        if self.plain is not None and not isinstance(event, (TrainingStarted, TrainingFinished)):
            self.plain(event)
            return
        if isinstance(event, TrainingStarted):
            self.console.print(f"training [bold]{event.model}[/] on [bold]{event.dataset}[/]: "
                               f"{event.parameters:,} parameters, {event.device}, {event.precision}")
            if event.run_id:  # a line of its own: ids are long
                self.console.print(f"run {event.run_id}", highlight=False)
            for line in event.details:
                self.console.print(line, highlight=False)
            if event.first_epoch > 1:
                self.console.print(f"resumed after epoch {event.first_epoch - 1}", highlight=False)
            self.epoch_task = self.progress.add_task("epochs", total=event.epochs, completed=event.first_epoch - 1,
                                                     info="")
            self.step_task = self.progress.add_task("steps ", total=event.steps_per_epoch, info="")
            if self.plain is not None:
                self.plain(event)
            else:
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
        elif isinstance(event, TrainingFinished):
            if self.plain is not None:
                self.plain(event)
            if self.live:
                self.finish_bars(event)
                self.live.update(self._panel())
                self.live.stop()
            how = "interrupted" if event.interrupted else ("early stop" if event.stopped_early else "done")
            self.console.print(f"{how} after {event.epochs_run} epochs in {event.seconds:.1f}s; "
                               f"best epoch {event.best_epoch}")

