"""One dataset-info table for ``diffrec data info`` and the dashboard; the log and list tables."""

from __future__ import annotations

import io
import re

from rich.console import Console
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.render.datasets import dataset_info_table, dataset_list_table, log_info_table, origin, range_text
from diffrec_cli.tui.datasets_screen import info_table
from diffrec_cli.tui.records import DatasetInfo

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

META = {
    "name": "ml", "fingerprint": "09d880db4326a271",
    "counts": {"users": 1069, "items": 900, "train": 20864, "valid": 5804, "test": 2451, "interactions": 29119,
               "density": 0.030266},
    "ranges": {"train": {"rating_range": [4.0, 5.0], "time_range": [1600128000, 1647388800]},
               "valid": {"rating_range": [4.0, 5.0], "time_range": None}, "test": {}},
    "recipe": {"protocol": "clean", "min_user": 10},
    "report": {"log_rows": 57688},
    "source": {"format": "generated", "seed": 7},
}


def rows(table) -> list[tuple[str, ...]]:
    return list(zip(*(column._cells for column in table.columns)))


def test_dataset_info_rows():
    table = dataset_info_table("ml", META)
    assert table.title == "dataset ml"
    assert rows(table) == [
        ("users", "1,069"), ("items", "900"), ("train interactions", "20,864"), ("valid interactions", "5,804"),
        ("test interactions", "2,451"), ("all interactions", "29,119"), ("density", "3.0266%"),
        ("rating range (train)", "4 – 5"), ("rating range (valid)", "4 – 5"),
        ("time range (train)", "2020-09-15 → 2022-03-16"),
        ("recipe", "protocol=clean, min_user=10"), ("recipe report", "log_rows=57688"),
        ("fingerprint", "09d880db4326a271"), ("source", "format=generated, seed=7"),
    ]


def test_odd_values_show_as_missing_instead_of_failing():
    meta = {"counts": {"users": "many", "items": 3, "density": None}, "ranges": ["not", "a", "dict"],
            "recipe": "clean", "source": [], "report": {}}
    assert rows(dataset_info_table("odd", meta)) == [
        ("users", "–"), ("items", "3"), ("train interactions", "–"), ("valid interactions", "–"),
        ("test interactions", "–"), ("all interactions", "–"), ("density", "–"), ("fingerprint", "?")]
    assert range_text({"time_range": [1, "x"]}, "time") == "–" and range_text(None, "rating") == "–"


def test_the_dashboard_shows_the_same_rows_as_the_cli(home, tiny):
    home.save(tiny)
    meta = home.meta("tiny")
    dashboard = info_table(DatasetInfo("tiny", meta["counts"], meta))
    assert rows(dashboard) == rows(dataset_info_table("tiny", meta))
    assert dashboard.title == "dataset tiny" and dashboard.title_justify == "left"
    printed = ANSI.sub("", CliRunner().invoke(app, ["data", "info", "tiny"]).stdout)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(dataset_info_table("tiny", meta))
    assert printed == console.export_text()


def test_log_and_list_tables():
    log = {"rows": 6, "rows_read": 7, "duplicates_dropped": 1, "users": 3, "items": 3, "has_rating": True,
           "has_time": False, "rating_range": [1.0, 4.5], "source": {"format": "csv", "columns": {"user": "u"}}}
    assert rows(log_info_table("raw", log)) == [
        ("rows", "6"), ("rows read", "7"), ("duplicate rows dropped", "1"), ("users", "3"), ("items", "3"),
        ("density", "66.6667%"), ("rating range", "1 – 4.5"), ("time range", "no timestamps"),
        ("columns", "user=u"), ("source", "format=csv")]
    listed = dataset_list_table([META], title="datasets")
    assert rows(listed) == [("ml", "1,069", "900", "20,864", "5,804", "2,451", "3.0266%", "clean")]
    assert origin({"source": {"format": "split-folder"}}) == "split-folder" and origin({}) == "?"
