"""The metrics table shown by ``diffrec train``, ``diffrec eval`` and the dashboard's run overview."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich.table import Table

from diffrec_cli.runs import as_number
from diffrec_cli.metrics import METRICS  # not training.evaluate: tables must not load torch

# Short names for narrow columns (R@20, N@20, ...), one for each of evaluate.METRICS.
METRIC_LABELS = {"recall": "R", "ndcg": "N", "precision": "P", "mrr": "MRR", "hit": "HR"}


def metric_label(metric: str) -> str:
    """``recall@20`` → ``R@20``; a name without a short form stays as it is."""
    name, at, k = metric.partition("@")
    return f"{METRIC_LABELS.get(name, name)}{at}{k}"


def metrics_table(valid: Mapping[str, Any], test: Mapping[str, Any], ks: Sequence[int],
                  title: str = "metrics at the best validation epoch") -> Table:
    """One row per split and metric, one column per K, ``–`` where a value is missing.

    A row without any value is left out, so a split that was not evaluated shows no rows.
    """
    table = Table(title=title)
    table.add_column("metric")
    for k in ks:
        table.add_column(f"@{k}", justify="right")
    for split, values in (("valid", valid), ("test", test)):
        for metric in METRICS:
            cells = [as_number(values.get(f"{metric}@{k}")) for k in ks]
            if any(cell is not None for cell in cells):
                table.add_row(f"{split} {metric}", *["–" if cell is None else f"{cell:.4f}" for cell in cells])
    users = test.get("users")
    table.caption = ("averaged over users with at least one ground-truth item"
                     + (f" (test: {users:,})" if isinstance(users, int) and users else ""))
    return table
