"""``diffrec plot``: every kind of figure is a real PNG, SVG or PDF of non-trivial size; bad requests are
one-line errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from conftest import FAST_MODEL, FAST_TRAIN
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.figures import sweep_points
from diffrec_cli.plugins import get_registry
from diffrec_cli.training.job import train
from diffrec_cli.tuning import SearchSpace, read_tune, tune

pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """A data home with two tiny DiffRec runs and a 2×2 search over steps and noise_scale."""
    import conftest
    from diffrec_cli.data.store import DataHome

    home = DataHome(tmp_path_factory.mktemp("plot") / "home")
    home.save(conftest.make_tiny())
    runs = []
    for steps in ("3", "5"):
        settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN, "steps": steps, "device": "cpu"},
                                    dataset="tiny")
        runs.append(train(settings, get_registry(), home=home).run.id)
    result = tune("diffrec", "tiny", get_registry(), home=home,
                  space=SearchSpace({"steps": [2, 4], "noise_scale": [0.001, 0.01]}),
                  fixed={**FAST_MODEL, **FAST_TRAIN, "epochs": 1, "device": "cpu"})
    return home, runs, result


def plot(home, *args):
    return CliRunner().invoke(app, ["plot", *args, "--home", str(home.root)])


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 500 and height > 300


def assert_svg(path):
    assert path.stat().st_size > 10_000
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter("{http://www.w3.org/2000/svg}path"))) > 20  # lines, markers, axes


@pytest.mark.parametrize("kind,args", [("curves", ["--metric", "recall@20", "--metric", "ndcg@10"]),
                                       ("losses", []), ("compare", ["--split", "valid"])])
def test_run_figures_are_real_images(plotted, tmp_path, kind, args):
    home, runs, _ = plotted
    for suffix, check in ((".png", assert_png), (".svg", assert_svg)):
        out = tmp_path / f"{kind}{suffix}"
        result = plot(home, kind, *runs, "--out", str(out), *args)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"wrote {out}"
        check(out)


def test_sweep_figures_from_a_search(plotted, tmp_path):
    home, _, result = plotted
    out = tmp_path / "sweep.png"
    done = plot(home, "sweep", result.tune_id[:20], "--x", "noise_scale", "--lines", "steps", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert_png(out)
    categorical = tmp_path / "sweep.svg"
    assert plot(home, "sweep", str(result.path), "--x", "steps", "--out", str(categorical)).exit_code == 0
    assert_svg(categorical)
    pdf = tmp_path / "sweep.pdf"
    assert plot(home, "sweep", str(result.path / "tune.json"), "--x", "steps", "--out", str(pdf)).exit_code == 0
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_sweep_points_are_one_line_per_value_of_the_other_setting(plotted):
    home, _, result = plotted
    saved = read_tune(home, result.tune_id)
    assert [t.test for t in saved.trials] == [t.test for t in result.trials]
    lines = sweep_points(saved, "noise_scale", "steps", "recall@20", "test")
    assert sorted(lines) == ["2", "4"]
    by_trial = {(t.params["steps"], t.params["noise_scale"]): t.test["recall@20"] for t in result.trials}
    assert lines["4"] == [(0.001, by_trial[(4, 0.001)]), (0.01, by_trial[(4, 0.01)])]


def test_bad_requests_are_one_line_errors(plotted, tmp_path):
    home, runs, result = plotted
    wrong = plot(home, "curves", runs[0], "--out", str(tmp_path / "curves.jpg"))
    assert wrong.exit_code == 2 and "cannot tell the figure format from 'curves.jpg'" in wrong.output
    unswept = plot(home, "sweep", result.tune_id, "--x", "lr", "--out", str(tmp_path / "s.png"))
    assert unswept.exit_code == 2 and "did not sweep 'lr' (it swept: steps, noise_scale)" in unswept.output
    assert plot(home, "sweep", "nosuch", "--x", "steps", "--out", str(tmp_path / "s.png")).exit_code == 2
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert json.loads((result.path / "tune.json").read_text())["tune_id"] == result.tune_id


def test_a_sweep_over_words_draws_bars_in_the_order_searched():
    from diffrec_cli.figures import sweep
    from diffrec_cli.tuning import Trial, TuneResult

    trials = [Trial(n, {"sampling": s}, "finished", valid={"recall@20": v}, test={"recall@20": v, "ndcg@20": v / 2})
              for n, (s, v) in enumerate([("uniform", 0.16), ("importance", 0.17)], start=1)]
    result = TuneResult("t", None, "diffrec", "ml-1m", "grid", "recall@20", {},
                        {"sampling": ["uniform", "importance"]}, trials)
    figure = sweep(result, "sampling")
    recall, ndcg = figure.axes
    assert [t.get_text() for t in recall.get_xticklabels()] == ["uniform", "importance"]
    def heights(ax):  # left to right
        return [round(bar.get_height(), 4) for bar in sorted(ax.patches, key=lambda bar: bar.get_x())]

    assert heights(recall) == [0.16, 0.17] and heights(ndcg) == [0.08, 0.085]
    assert recall.get_ylim()[0] > 0.1  # near the lowest bar: a few per cent must show
