"""Plain progress lines (``--no-live``: logs, CI, nohup), the rich panel's ending, and training progress in
status.json."""

from __future__ import annotations

import io
import json

from rich.console import Console

from diffrec_cli.cli.progress import PLAIN_EVERY, RichReporter
from diffrec_cli.runs import Run
from diffrec_cli.training.events import EpochFinished, Evaluated, StepFinished, TrainingFinished, TrainingStarted
from diffrec_cli.training.recorder import PROGRESS_EVERY, RunRecorder

STARTED = TrainingStarted("20240301-101500-diffrec-ml-1m-a1b2", "diffrec", "ml-1m", 200, 3, 1000, "cpu", "fp32", 5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def evaluated(epoch: int, value: float, best: bool) -> Evaluated:
    return Evaluated(epoch, {"recall@20": value}, {"recall@20": value / 2}, 4.1, best, epoch, value, "recall@20")


def plain_output(events, clock=None) -> str:
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, width=80, color_system=None), live=False, clock=clock or Clock())
    for event in events:
        reporter(event)
    return out.getvalue()


def test_plain_lines_label_each_epoch_and_its_evaluation():
    events = [STARTED]
    for epoch in (1, 2):
        events += [StepFinished(epoch, step, 0.5) for step in (1, 2, 3)]
        events.append(EpochFinished(epoch, 0.123 / epoch, 12.34))
        if epoch == 2:
            events.append(evaluated(2, 0.1234, True))
    events.append(TrainingFinished(2, 2, False, False, 30.0))
    lines = plain_output(events).splitlines()
    assert lines[:2] == ["training diffrec on ml-1m: 1,000 parameters, cpu, fp32",
                         "run 20240301-101500-diffrec-ml-1m-a1b2"]  # the id on its own line, not wrapped
    assert lines[2:4] == ["epoch 1/200: loss 0.1230 (12.3 s/epoch)",
                          "epoch 2/200: loss 0.0615 (12.3 s/epoch), eval 4.1 s: valid recall@20 0.1234 *"]
    assert lines[4] == "done after 2 epochs in 30.0s; best epoch 2"


def test_plain_lines_report_a_long_epoch_every_30_seconds():
    clock = Clock()
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, width=80, color_system=None), live=False, clock=clock)
    reporter(STARTED)
    for step in (1, 2, 3):
        clock.now += PLAIN_EVERY / 2 + 1  # a line after every second step
        reporter(StepFinished(1, step, 0.25 * step))
    assert out.getvalue().splitlines()[2:] == ["epoch 1/200: step 2, loss 0.5000"]


def test_rich_panel_after_early_stop_shows_no_time_remaining():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    reporter = RichReporter(console, live=True)
    reporter(STARTED)
    for epoch in (1, 2):
        for step in (1, 2, 3):
            reporter(StepFinished(epoch, step, 0.5))
        reporter(EpochFinished(epoch, 0.5, 1.0))
    reporter(TrainingFinished(1, 2, True, False, 2.0))
    epochs, steps = reporter.progress.tasks
    assert epochs.finished and steps.finished  # an early stop ends the bars where training ended
    assert epochs.time_remaining == 0 and epochs.completed == 2
    assert "early stop (of 200 epochs)" in out.getvalue() and "early stop after 2 epochs" in out.getvalue()


def test_status_json_keeps_the_epoch_and_step_at_most_every_few_seconds(tmp_path):
    run = Run.create(tmp_path / "runs", "diffrec", "tiny", {"model": "diffrec"})
    clock = Clock()
    recorder = RunRecorder(run, model=None, meta=None, clock=clock)

    def status():
        return json.loads((run.path / "status.json").read_text())

    recorder(STARTED)
    recorder(StepFinished(1, 1, 0.5))
    assert status() | {"updated": 0, "pid": 0, "host": ""} == {"status": "running", "epoch": 1, "epochs": 200,
                                                               "step": 1, "steps_per_epoch": 3, "updated": 0,
                                                               "pid": 0, "host": ""}
    recorder(StepFinished(1, 2, 0.5))
    assert status()["step"] == 1  # written at most every PROGRESS_EVERY seconds
    clock.now += PROGRESS_EVERY
    recorder(StepFinished(1, 3, 0.5))
    recorder(EpochFinished(1, 0.5, 1.0))
    assert (status()["epoch"], status()["step"]) == (1, 3)
    clock.now += PROGRESS_EVERY
    recorder(StepFinished(2, 1, 0.5))
    assert (status()["epoch"], status()["step"]) == (2, 1)
