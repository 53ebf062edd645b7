"""Live training: the dashboard's panel fed by a worker thread, the rich panel of ``diffrec train``, and
stopping a training (the stop key, and Ctrl-C on the real command)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

from rich.console import Console

from conftest import FAST_MODEL, FAST_TRAIN
from dashboard_fixtures import async_test, settle
from diffrec_cli.cli.progress import RichReporter
from diffrec_cli.config import resolve_settings
from diffrec_cli.plugins import get_plugins
from diffrec_cli.training.job import train
from diffrec_cli.tui.app import make_app
from diffrec_cli.tui.detail_screen import RunDetailScreen
from diffrec_cli.tui.live import LivePanel, LiveTrainingScreen
from diffrec_cli.tui.runs_screen import RunsScreen
from diffrec_cli.tui.widgets import LossSparkline, StepLossBars


def tiny_settings(**extra):
    return resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN, "device": "cpu", **extra}, dataset="tiny")


@async_test
async def test_live_panel_gets_a_loss_for_every_diffusion_step(tiny_home):
    app = make_app(tiny_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("t")  # the training form
        form = app.screen
        form.query_one("#form-dataset").value = "tiny"
        form.query_one("#form-epochs").value = "3"
        form.query_one("#form-settings").value = " ".join(f"{k}={v}" for k, v in {**FAST_MODEL, **FAST_TRAIN}.items()
                                                          if k != "epochs") + " device=cpu"
        await pilot.press("enter")
        await settle(pilot)  # the training worker too
        screen = app.screen
        assert isinstance(screen, LiveTrainingScreen) and screen.done and screen.error is None
        assert screen.settings.train.epochs == 3 and screen.settings.model["steps"] == FAST_MODEL["steps"]
        panel = screen.query_one(LivePanel)
        tracker = panel.tracker
        assert tracker.state == "finished" and tracker.epochs_done == 3
        bars = panel.query_one(StepLossBars)
        assert len(bars.values) == int(FAST_MODEL["steps"])
        assert all(v is not None and v > 0 for v in bars.values)  # every diffusion step received a value
        assert len(panel.query_one(LossSparkline).values) == 3 * tracker.steps_per_epoch
        assert len(tracker.evaluations) == 3 and tracker.best is not None

        status = json.loads((tiny_home.runs_dir / screen.run_id / "status.json").read_text())
        assert status["status"] == "finished"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, RunsScreen)
        assert [r.status for r in app.screen.rows if r.id == screen.run_id] == ["finished"]

        # the finished run's detail recommends from its checkpoint
        await pilot.press("enter", "4", *"u0", "enter")
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen) and detail.run_id == screen.run_id
        recs = detail.query_one("#recs")
        items = [str(recs.get_cell_at((i, 1))) for i in range(recs.row_count)]
        assert len(items) == 10 and len(set(items)) == 10
        seen = {f"i{j}" for j in tiny_home.load("tiny").train[0].indices}
        assert not seen & set(items)
        await pilot.press("ctrl+a", "ctrl+k", *"nobody", "enter")
        await settle(pilot)
        assert recs.row_count == 0
        assert "unknown user id 'nobody'" in str(detail.query_one("#rec-status").render())


@async_test
async def test_stop_key_marks_run_stopped_and_keeps_best_checkpoint(tiny_home):
    app = make_app(tiny_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        screen = app.start_training(tiny_settings(epochs="5000", patience="5000"))
        await pilot.pause()
        tracker = screen.query_one(LivePanel).tracker
        for _ in range(300):
            await pilot.pause(0.02)
            if len(tracker.evaluations) >= 2:
                break
        await pilot.press("x")
        await settle(pilot)
        assert screen.done and tracker.state == "stopped" and tracker.epochs_done < 5000
        run = tiny_home.runs_dir / screen.run_id
        assert json.loads((run / "status.json").read_text())["status"] == "stopped"
        assert (run / "checkpoint" / "checkpoint.json").is_file()
        assert json.loads((run / "final.json").read_text())["best_epoch"] >= 1


def test_rich_panel_draws_sparkline_and_step_bars(tiny_home):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    reporter = RichReporter(console, live=True)
    assert reporter.live_enabled
    train(tiny_settings(epochs="2"), get_plugins().registry, home=tiny_home, reporter=reporter)
    text = out.getvalue()
    assert "loss per step" in text
    assert "5/5 steps filled" in text
    assert "t=1" in text and "t=5" in text
    assert len(reporter.losses) == 2


def test_ctrl_c_on_diffrec_train_stops_cleanly(tiny_home):
    """SIGINT to the real command: the run is marked stopped and its best checkpoint kept."""
    sets = []
    for key, value in {**FAST_MODEL, **FAST_TRAIN, "epochs": "100000", "patience": "100000"}.items():
        sets += ["--set", f"{key}={value}"]
    env = {**os.environ, "DIFFREC_HOME": str(tiny_home.root), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "diffrec_cli", "train", "--dataset", "tiny", "--device", "cpu",
                             "--no-live", "--samples", "0", *sets], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("epoch 2:") or not line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 130, output  # stopped by SIGINT: scripts can tell it from a finished run
    assert "interrupted after" in output
    (run,) = list(tiny_home.runs_dir.iterdir())
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert (run / "checkpoint" / "model.safetensors").is_file()
