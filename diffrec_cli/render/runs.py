"""Runs as rows and tables: ``diffrec runs list``, ``show`` and ``export``.

Everything is shaped from :func:`diffrec_cli.runs.read_run` records, so a half-written or foreign run folder
becomes a row with what could be read (and its problems), never an exception. No torch here.
"""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.table import Table

from diffrec_cli.metrics import METRICS
from diffrec_cli.render.metrics import metric_label
from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.runs import RunRecord, as_number, short_id

MISSING = "–"
STATUS_STYLES = {"running": "yellow", "finished": "green", "failed": "red", "stopped": "magenta", "crashed": "red"}


def started_text(record: RunRecord, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return MISSING if record.started is None else time.strftime(fmt, time.localtime(record.started))


def run_row(record: RunRecord) -> dict[str, Any]:
    """One run as plain data (``runs list --json``): what the table shows, unabridged."""
    best = record.best()
    return {"id": record.id, "path": str(record.path), "model": record.model, "dataset": record.dataset,
            "status": record.status, "started": record.started, "metric": record.metric,
            "best_epoch": best.epoch, "valid": best.valid, "test": best.test,
            "evaluations": len(record.evaluations), "parameters": record.parameters,
            "seconds": as_number((record.final or {}).get("seconds")), "problems": record.problems}


def runs_table(records: list[RunRecord], title: str) -> Table:
    """One line per run, narrow enough for 80 columns: the shortest id the CLI accepts, when it started,
    model, dataset, status, best epoch and its validation and test value of the run's selection metric."""
    ids = [r.id for r in records]
    metrics = {r.metric for r in records}
    same = metric_label(next(iter(metrics))) if len(metrics) == 1 else ""
    # no column rules: two spaces between columns keep a line of ids, dates and scores within 80 columns
    table = Table(title=title, box=None, pad_edge=False, header_style="bold underline",
                  caption=None if same else "valid, test: each run's selection metric")
    table.add_column("run", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("model", overflow="fold")
    table.add_column("dataset", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("best", justify="right", no_wrap=True)
    for split in ("valid", "test"):
        table.add_column(f"{split} {same}".strip(), justify="right", no_wrap=True)
    for record in records:
        best = record.best()
        status = record.status or "unreadable"
        table.add_row(short_id(record.id, ids), started_text(record, "%m-%d %H:%M"), record.model or MISSING,
                      record.dataset or MISSING, f"[{STATUS_STYLES.get(status, 'red')}]{status}[/]",
                      MISSING if best.epoch is None else str(best.epoch),
                      *(_value(best.split(split).get(record.metric)) for split in ("valid", "test")))
    return table


def run_table(record: RunRecord) -> Table:
    """One run's facts (``runs show``); its metrics table and settings are shown beside it."""
    table = Table("", "", title=f"run {record.id}", show_header=False, box=box.SIMPLE, pad_edge=False)
    best = record.best()
    final = record.final or {}
    for label, value in (
            ("path", str(record.path)), ("status", record.status or "unreadable"),
            ("model", record.model or MISSING), ("dataset", record.dataset or MISSING),
            ("started", started_text(record)), ("parameters", _count(record.parameters)),
            ("metric", f"{record.metric} (validation, selects the best epoch)"),
            ("best epoch", MISSING if best.epoch is None else str(best.epoch)),
            ("epochs run", str(final.get("epochs_run", MISSING))), ("evaluations", str(len(record.evaluations))),
            ("wall time", format_seconds(as_number(final.get("seconds")))),
            ("checkpoint", str(record.checkpoint) if record.checkpoint else "none yet")):
        table.add_row(label, value)
    for problem in record.problems:
        table.add_row("problem", f"[red]{problem}[/]")
    return table


def settings_table(record: RunRecord) -> Table:
    """The trainer's settings and the model's recorded configuration, one ``key value`` line each."""
    table = Table("setting", "value", title="settings", box=box.SIMPLE_HEAD, pad_edge=False)
    train, spec = record.config.get("train"), record.config.get("model_spec")
    rows = dict(train) if isinstance(train, dict) else {}
    spec = spec if isinstance(spec, dict) else {}
    components = dict(spec.get("components") or {})
    components["reweighting"] = record.config.get("reweighting")
    rows.update(_mapping(spec.get("config")))
    for name, component in components.items():
        if isinstance(component, dict):  # the component's registered name, then its own settings
            rows[name] = component.get("name", MISSING)
            rows.update(_mapping(component.get("config")))
    for key, value in rows.items():
        if key not in ("model", "dataset"):  # shown above the metrics already
            table.add_row(str(key), str(value))
    return table


def history_rows(records: list[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every evaluation of every run, one row each (``runs export``): the columns, then the rows. Metric
    columns are ``valid_recall@20`` and so on, ordered by split, metric and K; a value a run lacks is None."""
    metric_keys: set[tuple[str, str]] = set()
    rows = []
    for record in records:
        for evaluation in record.evaluations:
            row: dict[str, Any] = {"run": record.id, "model": record.model, "dataset": record.dataset,
                                   "epoch": evaluation.get("epoch"), "seconds": as_number(evaluation.get("seconds")),
                                   "loss": as_number(evaluation.get("loss"))}
            for split in ("valid", "test"):
                for key, value in _mapping(evaluation.get(split)).items():
                    if "@" in key:
                        metric_keys.add((split, key))
                        row[f"{split}_{key}"] = as_number(value)
            rows.append(row)
    order = {name: i for i, name in enumerate(METRICS)}

    def rank(split_key: tuple[str, str]) -> tuple[int, int, int]:
        split, key = split_key
        name, _, k = key.partition("@")
        return (split != "valid", order.get(name, len(order)), int(k) if k.isdigit() else 0)

    columns = ["run", "model", "dataset", "epoch", "seconds", "loss",
               *(f"{split}_{key}" for split, key in sorted(metric_keys, key=rank))]
    return columns, [{column: row.get(column) for column in columns} for row in rows]


def _value(value: Any) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{number:.4f}"


def _count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
