"""render/: the metrics table, metric labels and number formats shared by the CLI and the dashboard."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

import diffrec_cli
from diffrec_cli.render.metrics import METRIC_LABELS, metric_label, metrics_table
from diffrec_cli.render.numbers import format_seconds, short_number
from diffrec_cli.training.evaluate import METRICS

PACKAGE = Path(diffrec_cli.__file__).parent


def lines(renderable, width=60) -> list[str]:
    console = Console(width=width, color_system=None, record=True)
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def cells(line: str) -> list[str]:
    """The cells of a table row (the header's borders are heavy lines); [] for any other line."""
    line = line.replace("┃", "│")
    return [c.strip() for c in line.split("│") if c.strip()] if "│" in line else []


def test_metrics_table_rows_columns_and_missing_values():
    valid = {"recall@10": 0.1, "recall@20": 0.25, "ndcg@10": 0.05, "users": 7}
    test = {"recall@10": 0.125, "ndcg@20": 0.5, "hit@10": 1, "users": 1234}
    table = metrics_table(valid, test, [10, 20], title="t")
    rows = [cells(line) for line in lines(table) if cells(line)]
    assert rows == [["metric", "@10", "@20"],
                    ["valid recall", "0.1000", "0.2500"], ["valid ndcg", "0.0500", "–"],
                    ["test recall", "0.1250", "–"], ["test ndcg", "–", "0.5000"], ["test hit", "1.0000", "–"]]
    assert table.caption == "averaged over users with at least one ground-truth item (test: 1,234)"
    only_valid = metrics_table(valid, {}, [10])
    assert [r[0] for r in map(cells, lines(only_valid)) if r] == ["metric", "valid recall", "valid ndcg"]
    assert only_valid.caption == "averaged over users with at least one ground-truth item"


def test_metric_labels_cover_every_metric():
    assert list(METRIC_LABELS) == list(METRICS)
    assert [metric_label(f"{m}@20") for m in METRICS] == ["R@20", "N@20", "P@20", "MRR@20", "HR@20"]
    assert metric_label("auc") == "auc"


def test_number_formats():
    assert [format_seconds(s) for s in (None, 0, 59.6, 61, 3725)] == ["–", "0:00", "1:00", "1:01", "1:02:05"]
    assert [short_number(v) for v in (0, 0.012345, 12.345, 1234.5, 0.0001)] == ["0", "0.01235", "12.3", "1.2e+03",
                                                                                "1.0e-04"]


def test_the_metric_names_are_listed_once():
    """metrics.METRICS is the list; other modules import it instead of spelling the names again."""
    spelled = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if '"ndcg", "precision", "mrr"' in p.read_text(encoding="utf-8")}
    assert spelled == {"metrics.py"}
