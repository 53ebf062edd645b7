"""Every dashboard screen at 80×24: ids the CLI accepts, whole values and names, readable settings."""

from __future__ import annotations

from dashboard_fixtures import (RUN_A, RUN_B, RUN_C, RUN_EASE, assert_tables_whole, async_test, runs_home,  # noqa: F401
                                screen_lines, settle, utc, write_ease_run)
from diffrec_cli.config import TrainConfig
from diffrec_cli.runs import resolve_run
from diffrec_cli.tui.compare_screen import CompareScreen
from diffrec_cli.tui.live import progress_lines
from diffrec_cli.tui.train_form import TrainForm
from diffrec_cli.training.events import EpochFinished, StepFinished, TrainingFinished, TrainingStarted
from diffrec_cli.training.tracker import TrainingTracker

SIZE = (80, 24)


def make_app(home):
    from diffrec_cli.tui.app import make_app as make

    app = make(home, refresh_seconds=3600)
    app.sub_title = "fixture home"  # the temporary home's path is longer than a header
    return app


@async_test
async def test_runs_table_shows_ids_the_cli_resolves(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs")
        for run_id in (RUN_A, RUN_B, RUN_C):
            shown = str(table.get_cell(run_id, "id")).strip(" ●")
            assert len(shown) < len(run_id)
            assert resolve_run(runs_home.runs_dir, shown) == runs_home.runs_dir / run_id
        assert_tables_whole(app)  # only whole columns: the rest waits for a wider terminal
        assert list(table.columns)[-1] == "seconds"


async def compare(home, run_ids, check) -> None:
    """Open the comparison of ``run_ids`` at 80×24 and hand the screen and its text to ``check``."""
    app = make_app(home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.compare(list(run_ids))
        await settle(pilot)
        assert_tables_whole(app)
        await check(pilot, app.screen, "\n".join(screen_lines(app)))


@async_test
async def test_compare_two_diffrec_runs_names_the_setting_that_differs(runs_home):
    async def check(pilot, screen, text):
        assert [(r.label, r.values) for r in screen.rows if r.section == "config"] == [("steps", [5, 8])]
        assert "model_spec" not in text and "–" not in text
        assert len(screen.rows) + 2 + 4 <= 24 - 2  # section titles, header, legend: within the screen

    await compare(runs_home, [RUN_A, RUN_C], check)


@async_test
async def test_compare_ease_with_diffrec_shows_only_shared_settings(runs_home):
    write_ease_run(runs_home.runs_dir)

    async def check(pilot, screen, text):
        settings = {r.label: r.values for r in screen.rows if r.section == "config"}
        assert settings == {"model": ["ease", "diffrec"]}  # the same dataset, trainer and reweighting
        assert "only some runs have: dims, dropout, emb_size, first_beta, history," in text.replace("\n", " ")
        assert "reg" in text and "–" not in text.split("metrics")[0]
        await pilot.press("k")  # the metric rows move to the next K
        assert screen.k == 10 and "valid recall@10" in [r.label for r in screen.rows]

    await compare(runs_home, [RUN_EASE, RUN_A], check)


@async_test
async def test_detail_tabs_and_footer_fit(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_run(RUN_A)
        await settle(pilot)
        for tab in "1234":
            await pilot.press(tab)
            await pilot.pause()
            footer = screen_lines(app)[-1]
            assert footer.rstrip().endswith("^p Commands")
            assert tab == "4" or "q Quit" in footer  # the user-id field takes the keys in the last tab
            assert "…" not in "\n".join(screen_lines(app))
        await pilot.press("escape")


@async_test
async def test_train_form_offers_registered_models_and_prepared_datasets(runs_home):
    app = make_app(runs_home)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        form = app.screen
        assert isinstance(form, TrainForm)
        assert form.query_one("#form-epochs").value == str(TrainConfig.epochs) == "200"
        model, dataset = form.query_one("#form-model"), form.query_one("#form-dataset")
        assert "diffrec" in form.models and "ldiffrec" in form.models and model.value == "diffrec"
        assert form.datasets == ["demo", "tiny"] and dataset.value == "tiny"
        dataset.value = "demo"
        settings = form.settings()
        assert (settings.train.model, settings.train.dataset, settings.train.epochs) == ("diffrec", "demo", 200)
        text = "\n".join(screen_lines(app))
        assert "train a model" in text and "settings" in text


def test_live_progress_after_early_stop_has_no_eta():
    tracker = TrainingTracker(clock=lambda: 100.0)
    tracker(TrainingStarted("r", "diffrec", "tiny", 200, 2, 10, "cpu", "fp32", 5))
    for epoch in (1, 2):
        for step in (1, 2):
            tracker(StepFinished(epoch, step, 0.5))
        tracker(EpochFinished(epoch, 0.5, 1.0))
    assert "ETA" in progress_lines(tracker, 76).plain
    tracker(TrainingFinished(1, 2, True, False, 65.0))
    last = progress_lines(tracker, 76).plain.splitlines()[-1]
    assert last == "stopped early after 1:05"
