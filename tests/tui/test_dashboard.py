"""The dashboard through Pilot: runs table, sort, filter, run detail, compare, datasets, broken runs."""

from __future__ import annotations

import json

from dashboard_fixtures import RUN_A, RUN_B, RUN_C, async_test, runs_home, settle, utc, write_run  # noqa: F401
from diffrec_cli.tui.app import make_app
from diffrec_cli.tui.compare_screen import BEST_STYLE, CompareScreen
from diffrec_cli.tui.datasets_screen import DatasetsScreen
from diffrec_cli.tui.detail_screen import RunDetailScreen
from diffrec_cli.tui.runs_screen import RunsScreen
from diffrec_cli.tui.widgets import CurveChart, LossSparkline, StepLossBars


def cell(table, row, column) -> str:
    return str(table.get_cell(row, column))


async def sorted_by_id(pilot) -> None:
    """Once the runs are read: runs A, B, C from the top, the cursor on A."""
    await settle(pilot)
    pilot.app.runs_screen.sort_by("id", reverse=False)
    pilot.app.runs_screen.query_one("#runs").move_cursor(row=0)


def row_order(table) -> list[str]:
    return [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)]


@async_test
async def test_runs_table_lists_sorts_and_filters(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs")
        assert row_order(table) == [RUN_C, RUN_B, RUN_A]  # newest first
        assert cell(table, RUN_A, "id").strip() == "a1a1"
        assert cell(table, RUN_A, "status") == "finished"
        assert cell(table, RUN_C, "status") == "stopped"
        assert cell(table, RUN_A, "valid_recall") == "0.3624"
        assert cell(table, RUN_B, "test_recall") == "0.3866"
        assert cell(table, RUN_A, "best_epoch") == "4"
        assert cell(table, RUN_B, "parameters") == "54.3k"
        assert cell(table, RUN_A, "seconds") == "6:07"
        assert cell(table, RUN_A, "started") == "03-01 10:15"

        screen.sort_by("test_recall")  # numbers sort best first
        await pilot.pause()
        assert row_order(table) == [RUN_B, RUN_A, RUN_C]
        assert str(table.columns["test_recall"].label).endswith("▼")
        assert screen.current_id() == RUN_C  # the cursor stays on its run
        screen.sort_by("test_recall")  # again: reversed
        await pilot.pause()
        assert row_order(table) == [RUN_C, RUN_A, RUN_B]
        await pilot.press("s")  # the next column, best first
        assert screen.sort_key == "test_ndcg"
        assert row_order(table) == [RUN_B, RUN_A, RUN_C]

        await pilot.press("slash", *"demo")
        assert screen.filter_text == "demo"
        assert row_order(table) == [RUN_B]
        await pilot.press("escape")
        assert row_order(table) == [RUN_B, RUN_A, RUN_C]
        await pilot.press("slash", *"dataset:tiny status:stop", "enter")
        assert row_order(table) == [RUN_C]
        assert app.focused is table


@async_test
async def test_open_run_shows_curves_and_losses(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await sorted_by_id(pilot)
        await pilot.press("enter")  # first row: run A
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen) and screen.run_id == RUN_A
        assert screen.detail.summary.best_epoch == 4
        assert screen.detail.final["valid"]["recall@20"] == 0.3624

        await pilot.press("2")
        chart = screen.query_one(CurveChart)
        assert [s.name for s in chart.series] == ["valid recall@20", "test recall@20"]
        assert [x for x, _ in chart.series[0].points] == [1, 2, 3, 4, 5, 6]
        assert max(chart.series[0].points, key=lambda p: p[1]) == (4.0, 0.3624)
        await pilot.press("m", "k")
        assert [s.name for s in chart.series] == ["valid ndcg@10", "test ndcg@10"]
        assert len(chart.series[1].points) == 6

        await pilot.press("3")
        assert screen.query_one("#tabs").active == "losses"
        bars = screen.query_one(StepLossBars)
        assert bars.values == [0.1, 0.15, 0.2, 0.25, 0.3]  # one bar per diffusion step of run A
        assert len(screen.query_one(LossSparkline).values) == 24  # 6 epochs x 4 optimizer steps

        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


@async_test
async def test_stopped_run_shows_missing_step_losses(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.open_run(RUN_C)
        await settle(pilot)
        bars = app.screen.query_one(StepLossBars)
        assert len(bars.values) == 8 and bars.filled == 5
        assert bars.values[5:] == [None, None, None]


@async_test
async def test_compare_two_runs_highlights_best(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await sorted_by_id(pilot)
        await pilot.press("c")  # nothing marked: a warning, no screen
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("space", "down", "space", "c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.run_ids == [RUN_A, RUN_B]
        table = screen.query_one("#compare")
        settings = {r.label: r.values for r in screen.rows if r.section == "config"}
        assert settings == {"model.steps": [5, 10], "train.dataset": ["tiny", "demo"], "train.lr": [0.001, 0.0005]}
        assert screen.best_of("valid recall@20") == RUN_A
        assert screen.best_of("test recall@20") == RUN_B  # B generalises better
        assert screen.best_of("parameters") == RUN_A  # fewer is better
        assert screen.best_of("best epoch") is None
        best = table.get_cell("test recall@20", RUN_B)
        other = table.get_cell("test recall@20", RUN_A)
        assert str(best) == "★ 0.3866" and str(best.style) == BEST_STYLE
        assert str(other) == "0.3262" and not other.style
        assert cell(table, "wall time", RUN_B) == "8:07"


@async_test
async def test_datasets_screen_shows_data_info(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        table = screen.query_one("#datasets")
        assert table.row_count == 1
        assert cell(table, "tiny", "users") == "40"
        assert cell(table, "tiny", "items") == "30"
        assert cell(table, "tiny", "train") == "200"
        assert [d.counts["test"] for d in screen.datasets] == [40]
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


@async_test
async def test_broken_and_new_runs_are_rows_not_crashes(runs_home):
    runs = runs_home.runs_dir
    (runs / "half-written").mkdir()
    (runs / "half-written" / "config.json").write_text('{"model": "diffrec", "data')  # cut mid-write
    (runs / "foreign").mkdir()
    (runs / "foreign" / "config.json").write_text("[1, 2, 3]\n")
    (runs / "just-created").mkdir()  # config not written yet
    (runs / "odd-status").mkdir()
    (runs / "odd-status" / "config.json").write_text(json.dumps({"model": "x", "dataset": "y"}))
    (runs / "odd-status" / "status.json").write_text(json.dumps({"status": 3}))
    (runs / "notes.txt").write_text("not a run")
    app = make_app(runs_home, refresh_seconds=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        errors = {r.id: r.error for r in screen.rows if r.error}
        assert set(errors) == {"half-written", "foreign", "just-created", "odd-status"}
        assert errors["just-created"] == "missing config.json"
        assert errors["foreign"] == "config.json: expected a dict, found a list"
        assert errors["half-written"].startswith("config.json: JSONDecodeError: ")
        assert errors["odd-status"] == "status.json: unknown status 3"
        table = screen.query_one("#runs")
        assert cell(table, "foreign", "status") == "error"
        assert cell(table, RUN_A, "status") == "finished"

        app.open_run("half-written")  # an error run opens with its problem shown
        await settle(pilot)
        assert app.screen.detail.problems and "JSONDecodeError" in app.screen.detail.problems[0]
        await pilot.press("escape")

        write_run(runs, "20240304-080000-diffrec-tiny-d4d4", dataset="tiny", steps=5, lr=0.01, epochs=1,
                  base=0.1, status="running")
        STARTED_EXTRA = "20240304-080000-diffrec-tiny-d4d4"
        await pilot.pause(0.5)  # the periodic refresh picks the new run up
        await settle(pilot)
        assert STARTED_EXTRA in [r.id for r in screen.rows]
        assert cell(table, STARTED_EXTRA, "status") == "running"


@async_test
async def test_command_palette_and_train_form(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Runs", "Datasets", "Train a model", "Compare marked runs", "Sort runs by tR@20",
                f"Open run {RUN_B}"} <= set(titles)
        await pilot.press("ctrl+p", *"open run 2024030209", "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == RUN_B
        await pilot.press("escape")

        await pilot.press("t")
        form = app.screen
        form.query_one("#form-epochs").value = "many"
        await pilot.press("enter")
        assert app.screen is form  # a bad value keeps the form open with the reason
        assert "epochs must be a positive whole number" in str(form.query_one("#form-error").render())
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen) and app.live is None


def test_dashboard_command_is_registered():
    from typer.testing import CliRunner

    from diffrec_cli.cli.app import app as cli

    result = CliRunner().invoke(cli, ["dashboard", "--help"])
    assert result.exit_code == 0 and "Browse, compare and watch runs" in result.output
    assert "--home" in result.output
