"""Run ids on the command line: the whole id, any unique prefix or suffix, and the short id the dashboard
shows (``runs.short_id``), which always resolves back to its run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.errors import DiffrecError
from diffrec_cli.runs import matching_ids, resolve_run, short_id

IDS = ["20260301-101500-diffrec-ml-1m-9098", "20260301-101502-ease-ml-1m-a1b2", "20260302-090000-diffrec-tiny-2026",
       "20260302-090001-diffrec-tiny-c0de", "20260302-090002-diffrec-tiny-0de9"]


@pytest.fixture
def runs_dir(tmp_path):
    for run_id in IDS:
        (tmp_path / run_id).mkdir()
    return tmp_path


@pytest.mark.parametrize("text, expected", [
    ("9098", IDS[0]),                          # the suffix the dashboard shows
    ("ml-1m-9098", IDS[0]),                    # any longer suffix
    ("20260301-101502", IDS[1]),               # a prefix
    (IDS[3], IDS[3]),                          # the whole id
    ("c0de", IDS[3]),
])
def test_a_unique_prefix_or_suffix_names_a_run(runs_dir, text, expected):
    assert resolve_run(runs_dir, text) == runs_dir / expected


@pytest.mark.parametrize("text, count", [
    ("20260301", 2),   # two prefixes
    ("2026", 5),       # every id begins with the year; one also ends with it
    ("101500", 0),     # only the middle of an id: no match
])
def test_ambiguous_or_unknown_names_are_errors_that_say_so(runs_dir, text, count):
    with pytest.raises(DiffrecError) as error:
        resolve_run(runs_dir, text)
    if count:
        assert str(error.value).startswith(f"{text!r} matches {count} runs; give more of the id (")
    else:
        assert str(error.value) == f"no run or checkpoint {text!r} (looked in {runs_dir})"


def test_short_ids_are_the_random_suffix_unless_another_id_shares_it():
    shown = {run_id: short_id(run_id, IDS) for run_id in IDS}
    assert shown == {IDS[0]: "9098", IDS[1]: "a1b2", IDS[2]: IDS[2],  # '2026' begins every id
                     IDS[3]: "c0de", IDS[4]: "0de9"}
    assert short_id("my-own-name", IDS + ["my-own-name"]) == "my-own-name"
    for run_id, text in shown.items():  # what is shown always names its run, and only it
        assert matching_ids(IDS, text) == [run_id]


def test_the_cli_accepts_the_short_id_the_dashboard_shows(tmp_path, monkeypatch):
    home = tmp_path / "home"
    run = home / "runs" / IDS[0]
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "diffrec", "dataset": "ml-1m"}))
    monkeypatch.setenv("DIFFREC_HOME", str(home))
    result = CliRunner().invoke(app, ["eval", "9098"])
    # the id resolved: what fails now is the missing checkpoint, not the name
    assert "no run or checkpoint" not in result.stderr
    assert result.exit_code == 2 and str(run) in " ".join(result.stderr.split())
