"""Snapshots (pytest-textual-snapshot) of every dashboard screen at 80×24 (runs, the four detail tabs, two
comparisons, datasets, the train form), and of the runs, curves and compare screens at 120×40 too.

The fixture runs have fixed ids, times and numbers, start times render in UTC, and the header shows a
fixed subtitle instead of the temporary data home. After an intended change of the screens, refresh
the SVGs with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and look at them before committing.
"""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_textual_snapshot", reason="pip install -e '.[test]' brings the snapshot plugin")

from dashboard_fixtures import RUN_A, RUN_B, RUN_C, RUN_EASE, runs_home, settle, utc, write_ease_run  # noqa: E402,F401
from diffrec_cli.tui.app import make_app  # noqa: E402

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def dashboard(home):
    app = make_app(home, refresh_seconds=3600)  # no refresh while the screenshot is taken
    app.sub_title = "fixture home"
    return app


async def _ready(pilot) -> None:
    pilot.app.sub_title = "fixture home"
    await settle(pilot)
    pilot.app.runs_screen.sort_by("id", reverse=False)
    pilot.app.runs_screen.query_one("#runs").move_cursor(row=0)
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_runs_table(runs_home, snap_compare, size):
    assert snap_compare(dashboard(runs_home), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("tab", ["1", "3", "4"], ids=["overview", "losses", "recommend"])
def test_run_detail_tabs(runs_home, snap_compare, tab):
    async def open_detail(pilot):
        await _ready(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press(tab)
        await pilot.pause()

    assert snap_compare(dashboard(runs_home), terminal_size=(80, 24), run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
def test_run_detail_curves(runs_home, snap_compare, size):
    async def open_detail(pilot):
        await _ready(pilot)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(dashboard(runs_home), terminal_size=size, run_before=open_detail)


@pytest.mark.parametrize("size", SIZES)
def test_compare(runs_home, snap_compare, size):
    async def compare(pilot):
        await _ready(pilot)
        pilot.app.compare([RUN_A, RUN_B])
        await settle(pilot)

    assert snap_compare(dashboard(runs_home), terminal_size=size, run_before=compare)


@pytest.mark.parametrize("runs", [pytest.param((RUN_A, RUN_C), id="diffrec-steps"),
                                  pytest.param((RUN_EASE, RUN_A), id="ease-diffrec")])
def test_compare_at_80x24(runs_home, snap_compare, runs):
    """Two DiffRec runs differing in steps; EASE beside DiffRec (no shared model settings)."""
    write_ease_run(runs_home.runs_dir)

    async def compare(pilot):
        await _ready(pilot)
        pilot.app.compare(list(runs))
        await settle(pilot)

    assert snap_compare(dashboard(runs_home), terminal_size=(80, 24), run_before=compare)


@pytest.mark.parametrize("key", ["d", "t"], ids=["datasets", "train-form"])
def test_screen_at_80x24(runs_home, snap_compare, key):
    async def open_screen(pilot):
        await _ready(pilot)
        await pilot.press(key)
        await settle(pilot)

    assert snap_compare(dashboard(runs_home), terminal_size=(80, 24), run_before=open_screen)
