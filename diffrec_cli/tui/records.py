"""What the dashboard shows about runs and datasets, read from the data home without Textual.

Runs are read while trainings write them. Every file a run writes is replaced atomically, but a
directory may still be half created, hold a foreign file, or come from another version: whatever goes
wrong reading one run becomes that run's ``error`` and never an exception.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

SUMMARY_K = 20
STATUSES = ("running", "finished", "failed", "stopped")


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is a {type(value).__name__}, not an object")
    return value


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
    if key in ("valid_recall", "valid_ndcg", "test_recall", "test_ndcg"):
        return f"{value:.4f}"
    if key == "parameters":
        return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else str(value)
    if key == "seconds":
        from diffrec_cli.training.tracker import format_seconds

        return format_seconds(value)
    return str(value)


def best_evaluation(evaluations: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    best, best_value = None, -math.inf
    for record in evaluations:
        value = _number(record.get("valid", {}).get(metric)) if isinstance(record, dict) else None
        if value is not None and value > best_value:
            best, best_value = record, value
    return best


def read_summary(path: Path, now: Callable[[], float] = time.time) -> RunSummary:
    """The runs-table row of one run directory; problems end up in ``error``."""
    path = Path(path)
    fields: dict[str, Any] = {}
    try:
        config = _dict(_read(path / "config.json"), "config.json")
        fields.update(model=str(config.get("model", "?")), dataset=str(config.get("dataset", "?")),
                      started=_number(config.get("started")))
        params = config.get("parameters")
        fields["parameters"] = params if isinstance(params, int) else None
        status = _dict(_read(path / "status.json"), "status.json").get("status")
        if status not in STATUSES:
            raise ValueError(f"status.json: unknown status {status!r}")
        fields["status"] = status
        metric = (config.get("train") or {}).get("metric", f"recall@{SUMMARY_K}")
        final_path, metrics_path = path / "final.json", path / "metrics.json"
        final = _dict(_read(final_path), "final.json") if final_path.exists() else None
        if final is not None:
            fields["best_epoch"] = final.get("best_epoch") if isinstance(final.get("best_epoch"), int) else None
            fields["seconds"] = _number(final.get("seconds"))
            valid, test = final.get("valid") or {}, final.get("test") or {}
        else:
            evaluations = _read(metrics_path) if metrics_path.exists() else []
            if not isinstance(evaluations, list):
                raise ValueError("metrics.json is not a list of evaluations")
            best = best_evaluation(evaluations, metric) or {}
            fields["best_epoch"] = best.get("epoch")
            valid, test = best.get("valid") or {}, best.get("test") or {}
            if status == "running" and fields["started"] is not None:
                fields["seconds"] = max(0.0, now() - fields["started"])
        fields.update(valid_recall=_number(valid.get(f"recall@{SUMMARY_K}")),
                      valid_ndcg=_number(valid.get(f"ndcg@{SUMMARY_K}")),
                      test_recall=_number(test.get(f"recall@{SUMMARY_K}")),
                      test_ndcg=_number(test.get(f"ndcg@{SUMMARY_K}")))
    except FileNotFoundError as exc:
        return RunSummary(path.name, path, **fields, error=f"missing {Path(exc.filename or '?').name}")
    except (OSError, ValueError, TypeError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        fields.pop("status", None)
        return RunSummary(path.name, path, **fields, error=f"{type(exc).__name__}: {exc}")
    return RunSummary(path.name, path, **fields)


def list_summaries(runs_dir: Path, now: Callable[[], float] = time.time) -> list[RunSummary]:
    if not runs_dir.is_dir():
        return []
    return [read_summary(p, now) for p in sorted(runs_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")]


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
    summary: RunSummary
    config: dict[str, Any] = field(default_factory=dict)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    optimizer_losses: list[float] = field(default_factory=list)
    step_losses: list[float | None] = field(default_factory=list)
    final: dict[str, Any] | None = None
    checkpoint: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ks(self) -> list[int]:
        ks = (self.config.get("train") or {}).get("ks")
        return [int(k) for k in ks] if isinstance(ks, list) and ks else [10, 20, 50, 100]

    def curve(self, split: str, metric: str) -> list[tuple[float, float]]:
        points = []
        for record in self.evaluations:
            value = _number((record.get(split) or {}).get(metric))
            if value is not None and _number(record.get("epoch")) is not None:
                points.append((float(record["epoch"]), value))
        return points


def read_detail(path: Path, now: Callable[[], float] = time.time) -> RunDetail:
    """Everything the run-detail screen shows; each unreadable file adds a line to ``problems``."""
    path = Path(path)
    detail = RunDetail(read_summary(path, now))
    if detail.summary.error:
        detail.problems.append(detail.summary.error)

    def load(name: str, kind: type) -> Any:
        try:
            value = _read(path / name)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            detail.problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        if not isinstance(value, kind):
            detail.problems.append(f"{name}: expected a {kind.__name__}, found a {type(value).__name__}")
            return None
        return value

    detail.config = load("config.json", dict) or {}
    detail.evaluations = [r for r in load("metrics.json", list) or [] if isinstance(r, dict)]
    detail.final = load("final.json", dict)
    losses = load("losses.json", dict) or {}
    steps, per_step = losses.get("optimizer_steps") or [], losses.get("per_diffusion_step") or []
    if isinstance(steps, list) and isinstance(per_step, list):
        detail.optimizer_losses = [float(v) for v in steps if _number(v) is not None]
        detail.step_losses = [_number(v) for v in per_step]
    else:
        detail.problems.append("losses.json: optimizer_steps and per_diffusion_step should be lists")
    checkpoint = path / "checkpoint"
    detail.checkpoint = checkpoint if (checkpoint / "checkpoint.json").is_file() else None
    return detail


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
    for split in ("valid", "test"):
        for metric in ("recall", "ndcg"):
            for k in ks:
                name = f"{metric}@{k}"
                metric_rows.append((f"{split} {name}", [_number(((d.final or {}).get(split) or {}).get(name))
                                                        if d.final else _best_metric(d, split, name) for d in details]))
    metric_rows.append(("best epoch", [d.summary.best_epoch for d in details]))
    metric_rows.append(("wall time", [d.summary.seconds for d in details]))
    metric_rows.append(("parameters", [d.summary.parameters for d in details]))
    for label, values in metric_rows:
        numbers = [(v, i) for i, v in enumerate(values) if _number(v) is not None]
        best = None
        if label != "best epoch" and len(numbers) > 1 and len({v for v, _ in numbers}) > 1:
            pick = min if label in LOWER_IS_BETTER else max
            best = pick(numbers, key=lambda pair: pair[0])[1]
        rows.append(CompareRow(label, values, best, "metrics"))
    return rows


def _best_metric(detail: RunDetail, split: str, name: str) -> float | None:
    metric = (detail.config.get("train") or {}).get("metric", f"recall@{SUMMARY_K}")
    best = best_evaluation(detail.evaluations, metric)
    return _number((best or {}).get(split, {}).get(name)) if best else None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    counts: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def list_datasets(home: Any) -> list[DatasetInfo]:
    """Prepared datasets with the statistics of ``diffrec data info``; a damaged meta.json is an error row."""
    out = []
    try:
        names = home.names()
    except OSError as exc:
        return [DatasetInfo(str(home.datasets_dir), error=f"{type(exc).__name__}: {exc}")]
    for name in names:
        try:
            meta = _dict(_read(home.dataset_dir(name) / "meta.json"), "meta.json")
            out.append(DatasetInfo(name, _dict(meta.get("counts", {}), "counts"), meta))
        except (OSError, ValueError) as exc:
            out.append(DatasetInfo(name, error=f"{type(exc).__name__}: {exc}"))
    return out
