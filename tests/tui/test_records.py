"""The dashboard's pure parts: reading runs, sorting and filtering, charts, the training tracker."""

from __future__ import annotations

from rich.console import Console

from dashboard_fixtures import RUN_A, RUN_B, RUN_C, write_fixture_runs
from diffrec_cli.render.charts import LineChart, Series, StepBars, bucket, progress_bar, sparkline
from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.training.events import EpochFinished, Evaluated, StepFinished, TrainingFinished, TrainingStarted
from diffrec_cli.training.tracker import TrainingTracker
from diffrec_cli.runs import read_run
from diffrec_cli.training.evaluate import METRICS
from diffrec_cli.tui.records import SUMMARY_METRICS, list_summaries, matches, read_detail, sort_summaries, summarize


def render(renderable, width=40, height=None) -> list[str]:
    console = Console(width=width, height=height or 25, color_system=None, record=True)
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def test_summaries_sort_and_filter(tmp_path):
    write_fixture_runs(tmp_path)
    (tmp_path / "empty").mkdir()
    rows = list_summaries(tmp_path)
    assert [r.id for r in rows] == [RUN_A, RUN_B, RUN_C, "empty"]
    assert rows[3].error == "missing config.json" and rows[3].status == "error"
    by_test = sort_summaries(rows, "test_recall", reverse=True)
    assert [r.id for r in by_test] == [RUN_B, RUN_A, RUN_C, "empty"]  # no value: always last
    assert [r.id for r in sort_summaries(rows, "test_recall")][-1] == "empty"
    assert [r.id for r in rows if matches(r, "tiny")] == [RUN_A, RUN_C]
    assert [r.id for r in rows if matches(r, "model:diff dataset:demo")] == [RUN_B]
    assert [r.id for r in rows if matches(r, "status:stopped")] == [RUN_C]
    assert set(SUMMARY_METRICS) <= set(METRICS)  # the table's columns name metrics that evaluation computes


def test_running_run_summary_comes_from_metrics(tmp_path):
    write_fixture_runs(tmp_path)
    run = tmp_path / RUN_C
    (run / "final.json").unlink()
    (run / "status.json").write_text('{"status": "running"}')
    summary = summarize(read_run(run), now=lambda: 1709496000.0 + 90)
    assert summary.status == "running" and summary.seconds == 90.0
    assert summary.best_epoch == 2 and summary.valid_recall == 0.288


def test_detail_tolerates_foreign_files(tmp_path):
    write_fixture_runs(tmp_path)
    run = tmp_path / RUN_A
    (run / "losses.json").write_text('"just a string"')
    (run / "metrics.json").write_text('[{"epoch": 1, "valid": {"recall@20": "high"}}, 7]')
    detail = read_detail(run)
    assert detail.problems == ["losses.json: expected a dict, found a str"]
    assert detail.step_losses == [] and detail.curve("valid", "recall@20") == []


def test_sparkline_bucket_and_progress_bar():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5], 10) == "▁▁"
    assert bucket([1, 3, None, None, 5, 7], 3) == [2.0, None, 6.0]
    assert progress_bar(1, 2, 4) == "██  "
    assert progress_bar(0, 0, 3) == "   "


def test_step_bars_one_column_per_step_and_dots_for_missing():
    lines = render(StepBars([1.0, 0.5, None, 0.25], height=2), width=20)
    assert len(lines) == 3
    assert lines[0].split() == ["1", "███"]  # top row: only the largest value reaches it; max on the axis
    assert lines[1].endswith("██████···▄▄▄")  # bottom row: 1.0 and 0.5 fill it, missing dot, 0.25 half
    assert lines[2].split() == ["t=1", "t=4"]


def test_line_chart_draws_every_series():
    chart = LineChart([Series("valid", [(1, 0.1), (2, 0.2)]), Series("test", [(1, 0.15), (2, 0.05)])], height=8)
    lines = render(chart, width=30)
    assert lines[0].startswith("0.2000 ┤") and lines[4].startswith("0.0500 ┤")
    assert "valid" in lines[-1] and "test" in lines[-1]
    assert any(ch != " " and 0x2800 <= ord(ch) <= 0x28FF for line in lines[:5] for ch in line)


def test_tracker_folds_events_and_estimates_time_left():
    clock = iter([100.0, 110.0, 120.0]).__next__
    tracker = TrainingTracker(clock=clock)
    tracker(TrainingStarted("r", "diffrec", "tiny", 4, 5, 10, "cpu", "fp32", 3))
    assert tracker.step_losses == [None, None, None] and tracker.state == "running"
    for step in range(1, 6):
        tracker(StepFinished(1, step, 1.0 / step))
    tracker(EpochFinished(1, 0.5, 1.0, [0.3, None, 0.1]))
    assert tracker.filled_steps == 2 and tracker.losses[-1] == 0.2
    assert tracker.eta_seconds() == 10.0 / 5 * 15  # 10 s for 5 of 20 steps
    tracker(Evaluated(1, {"recall@20": 0.2}, {"recall@20": 0.1}, 0.1, True, 1, 0.2, "recall@20"))
    tracker(Evaluated(2, {"recall@20": 0.1}, {"recall@20": 0.3}, 0.1, False, 1, 0.2, "recall@20"))
    assert tracker.best.epoch == 1 and tracker.last.epoch == 2
    tracker(TrainingFinished(1, 2, False, True, 12.0))
    assert tracker.state == "stopped" and tracker.eta_seconds() == 0.0 and tracker.elapsed == 12.0
    assert format_seconds(3725) == "1:02:05" and format_seconds(None) == "–"


def test_detail_with_wrongly_shaped_losses(tmp_path):
    write_fixture_runs(tmp_path)
    (tmp_path / RUN_B / "losses.json").write_text('{"optimizer_steps": 5, "per_diffusion_step": null}')
    detail = read_detail(tmp_path / RUN_B)
    assert detail.optimizer_losses == [] and detail.step_losses == []
    assert detail.problems == ["losses.json: optimizer_steps and per_diffusion_step should be lists"]
