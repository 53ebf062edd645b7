"""What the dashboard shows about runs, shaped from :func:`diffrec_cli.runs.read_run` without Textual.

Nothing here opens a run folder: ``runs.py`` reads it and turns whatever goes wrong into the run's
problems, so a half-written or foreign run becomes a row with an ``error``, never an exception.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.runs import RUNNING, RunRecord, as_number, read_run, read_runs

SUMMARY_K = 20
SUMMARY_METRICS = ("recall", "ndcg")  # the runs table and the comparison show these of evaluate.METRICS
METRIC_KEYS = tuple(f"{split}_{metric}" for split in ("valid", "test") for metric in SUMMARY_METRICS)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table."""

    id: str
    path: Path
    model: str = "?"
    dataset: str = "?"
    started: float | None = None
    status: str = "error"
    best_epoch: int | None = None
    valid_recall: float | None = None
    valid_ndcg: float | None = None
    test_recall: float | None = None
    test_ndcg: float | None = None
    parameters: int | None = None
    seconds: float | None = None
    error: str | None = None


# (key, header) of the runs table, in order; every key is a RunSummary field. The metrics come before
# the start time and size so that they fit an 80-column terminal; the rest scrolls into view.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "run"), ("model", "model"), ("dataset", "dataset"), ("status", "status"), ("best_epoch", "best"),
    ("valid_recall", "vR@20"), ("valid_ndcg", "vN@20"), ("test_recall", "tR@20"), ("test_ndcg", "tN@20"),
    ("seconds", "wall"), ("parameters", "params"), ("started", "started"),
)


def format_cell(summary: RunSummary, key: str) -> str:
    value = getattr(summary, key)
    if value is None:
        return "–"
    if key == "started":
        return time.strftime("%m-%d %H:%M", time.localtime(value))
    if key in METRIC_KEYS:
        return f"{value:.4f}"
    if key == "parameters":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else str(value)
    if key == "seconds":
        return format_seconds(value)
    return str(value)


def summarize(record: RunRecord, now: Callable[[], float] = time.time) -> RunSummary:
    """The runs-table row of one run; its first problem (if any) is the row's ``error``."""
    best, final = record.best(), record.final
    seconds = as_number(final.get("seconds")) if final is not None else None
    if final is None and record.status == RUNNING and record.started is not None:
        seconds = max(0.0, now() - record.started)
    metric_fields = {f"{split}_{metric}": as_number(best.split(split).get(f"{metric}@{SUMMARY_K}"))
                     for split in ("valid", "test") for metric in SUMMARY_METRICS}
    return RunSummary(record.id, record.path, model=record.model or "?", dataset=record.dataset or "?",
                      started=record.started, status=record.status or "error", best_epoch=best.epoch,
                      parameters=record.parameters, seconds=seconds, **metric_fields,
                      error=record.problems[0] if record.problems else None)


def list_summaries(runs_dir: Path, now: Callable[[], float] = time.time) -> list[RunSummary]:
    return [summarize(record, now) for record in read_runs(runs_dir)]


def sort_summaries(rows: list[RunSummary], key: str, reverse: bool = False) -> list[RunSummary]:
    """Sorted by one column; rows without a value always come last."""
    present = [r for r in rows if getattr(r, key) is not None]
    missing = [r for r in rows if getattr(r, key) is None]
    return sorted(present, key=lambda r: getattr(r, key), reverse=reverse) + missing


def matches(summary: RunSummary, query: str) -> bool:
    """Every word of the query must occur in the model or dataset name (``model:x`` / ``dataset:x``
    restrict a word to one of them; ``status:x`` filters on the status)."""
    for word in query.lower().split():
        field_name, sep, text = word.partition(":")
        if sep and field_name in ("model", "dataset", "status"):
            if text not in str(getattr(summary, field_name)).lower():
                return False
        elif word not in summary.model.lower() and word not in summary.dataset.lower():
            return False
    return True


@dataclass
class RunDetail:
    """Everything the run-detail and compare screens show: the row and the whole record."""

    summary: RunSummary
    record: RunRecord

    @property
    def config(self) -> dict[str, Any]:
        return self.record.config

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        return self.record.evaluations

    @property
    def optimizer_losses(self) -> list[float]:
        return self.record.optimizer_losses

    @property
    def step_losses(self) -> list[float | None]:
        return self.record.step_losses

    @property
    def final(self) -> dict[str, Any] | None:
        return self.record.final

    @property
    def checkpoint(self) -> Path | None:
        return self.record.checkpoint

    @property
    def problems(self) -> list[str]:
        return self.record.problems

    @property
    def ks(self) -> list[int]:
        return self.record.ks

    def curve(self, split: str, metric: str) -> list[tuple[float, float]]:
        """(epoch, value) of one metric over the evaluations; evaluations without the value are skipped."""
        points = []
        for evaluation in self.evaluations:
            split_values = evaluation.get(split)
            value = as_number(split_values.get(metric)) if isinstance(split_values, dict) else None
            epoch = as_number(evaluation.get("epoch"))
            if value is not None and epoch is not None:
                points.append((epoch, value))
        return points


def read_detail(path: Path, now: Callable[[], float] = time.time) -> RunDetail:
    """Everything the run-detail screen shows; what could not be read is in ``problems``."""
    record = read_run(path)
    return RunDetail(summarize(record, now), record)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (``train.lr``, ``model_spec.config.steps``)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@dataclass
class CompareRow:
    label: str
    values: list[Any]
    best: int | None = None  # index of the best value (metrics only)
    section: str = "config"


# Labels of metrics where lower is better; every other metric row is "higher is better".
LOWER_IS_BETTER = ("wall time", "parameters")
IGNORED_KEYS = ("started", "run_id", "parameters")


def compare_rows(details: list[RunDetail]) -> list[CompareRow]:
    """Settings that differ between the runs, then metrics side by side with the best one marked."""
    flat = [{k.replace("model_spec.config.", "model."): v for k, v in flatten(d.config).items()} for d in details]
    every = {k for f in flat for k in f}
    # top-level model/dataset repeat train.model/train.dataset; timestamps and ids always differ
    keys = sorted(k for k in every if k.rsplit(".", 1)[-1] not in IGNORED_KEYS and f"train.{k}" not in every)
    rows = [CompareRow(k, [f.get(k) for f in flat]) for k in keys
            if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flat}) > 1]
    ks = sorted({k for d in details for k in d.ks})
    metric_rows: list[tuple[str, list[Any]]] = []
    bests = [d.record.best() for d in details]
    for split in ("valid", "test"):
        for metric in SUMMARY_METRICS:
            for k in ks:
                name = f"{metric}@{k}"
                metric_rows.append((f"{split} {name}", [as_number(best.split(split).get(name)) for best in bests]))
    metric_rows.append(("best epoch", [d.summary.best_epoch for d in details]))
    metric_rows.append(("wall time", [d.summary.seconds for d in details]))
    metric_rows.append(("parameters", [d.summary.parameters for d in details]))
    for label, values in metric_rows:
        numbers = [(v, i) for i, v in enumerate(values) if as_number(v) is not None]
        best = None
        if label != "best epoch" and len(numbers) > 1 and len({v for v, _ in numbers}) > 1:
            pick = min if label in LOWER_IS_BETTER else max
            best = pick(numbers, key=lambda pair: pair[0])[1]
        rows.append(CompareRow(label, values, best, "metrics"))
    return rows


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def list_datasets(home: Any) -> list[DatasetInfo]:
    """Prepared datasets with the statistics of ``diffrec data info``; a damaged meta.json is an error row."""
    try:
        names = home.names()
    except OSError as exc:
        return [DatasetInfo(str(home.datasets_dir), error=f"{type(exc).__name__}: {exc}")]
    return [_dataset_info(name, home.dataset_dir(name) / "meta.json") for name in names]


def _dataset_info(name: str, meta_path: Path) -> DatasetInfo:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return DatasetInfo(name, error=f"{type(exc).__name__}: {exc}")
    counts = meta.get("counts", {}) if isinstance(meta, dict) else None
    if not isinstance(counts, dict):
        return DatasetInfo(name, error=f"{meta_path.name}: expected an object with an object of counts")
    return DatasetInfo(name, counts, meta)
