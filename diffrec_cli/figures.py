"""Figures as files (PNG, SVG or PDF, by the file's suffix): metric curves of runs, the loss per diffusion
step, a bar chart comparing runs, and sweep plots of a ``diffrec tune`` search — the shapes of the paper's
Figures 4–7 (a metric against one swept setting, one line per value of another).

matplotlib is an optional dependency (``pip install 'diffrec[plot]'``), imported only when a figure is made;
figures are drawn on a ``matplotlib.figure.Figure`` (no pyplot, no display) and written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from diffrec_cli.atomic import atomic_path
from diffrec_cli.errors import DiffrecError
from diffrec_cli.runs import RunRecord, as_number

FORMATS = ("png", "svg", "pdf")
SIZE = (6.4, 4.0)  # inches: one column of a paper at 100 dpi
DPI = 150


def _figure(panels: int = 1) -> tuple[Any, list[Any]]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DiffrecError("figures need matplotlib, which is not installed (pip install 'diffrec[plot]')") from None
    figure = Figure(figsize=(SIZE[0] * (1 if panels == 1 else 0.75 * panels), SIZE[1]), layout="constrained")
    return figure, list(figure.subplots(1, panels, squeeze=False)[0])


def save(figure: Any, path: str | Path) -> Path:
    """Write ``figure`` to ``path``; the suffix (.png, .svg, .pdf) picks the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DiffrecError(f"cannot tell the figure format from {path.name!r}: end the name with "
                           f"{', '.join('.' + f for f in FORMATS)}")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=DPI)
    return path


def _label(record: RunRecord) -> str:
    return f"{record.model} {record.id}"


def curves(records: Sequence[RunRecord], metrics: Sequence[str] = ("recall@20",), split: str = "valid") -> Any:
    """Each metric over the epochs, one line per run (one panel per metric)."""
    figure, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for record in records:
            points = [(as_number(e.get("epoch")), as_number((e.get(split) or {}).get(metric)))
                      for e in record.evaluations if isinstance(e.get(split), dict)]
            points = [(x, y) for x, y in points if x is not None and y is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=_label(record))
        ax.set(xlabel="epoch", ylabel=f"{split} {metric}")
        ax.grid(alpha=0.3)
    _legend(axes[0])
    return figure


def step_losses(records: Sequence[RunRecord]) -> Any:
    """The mean loss per diffusion step t (the importance-sampling history), one line per run."""
    figure, (ax,) = _figure()
    for record in records:
        points = [(t, v) for t, v in enumerate(record.step_losses, start=1) if v is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=_label(record))
    ax.set(xlabel="diffusion step t", ylabel="mean loss", yscale="log" if _spans_decades(records) else "linear")
    ax.grid(alpha=0.3)
    _legend(ax)
    return figure


def _spans_decades(records: Sequence[RunRecord]) -> bool:
    values = [v for r in records for v in r.step_losses if v is not None and v > 0]
    return bool(values) and max(values) / min(values) > 100


def compare(records: Sequence[RunRecord], metrics: Sequence[str] = ("recall@20", "ndcg@20"),
            split: str = "test") -> Any:
    """Grouped bars: the runs' ``split`` metrics at their best epoch, one group per metric."""
    figure, (ax,) = _figure()
    width = 0.8 / max(1, len(records))
    for n, record in enumerate(records):
        values = [as_number(record.best().split(split).get(m)) or 0.0 for m in metrics]
        positions = [i + (n - (len(records) - 1) / 2) * width for i in range(len(metrics))]
        ax.bar(positions, values, width, label=_label(record))
    ax.set_xticks(range(len(metrics)), [f"{split} {m}" for m in metrics])
    ax.grid(axis="y", alpha=0.3)
    _legend(ax)
    return figure


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def sweep_points(result: Any, x: str, lines: str | None, metric: str,
                 split: str) -> dict[str, list[tuple[Any, float]]]:
    """For each value of ``lines`` (one series when None), the (x value, metric) of the trials that scored,
    in the order of the x values."""
    series: dict[str, list[tuple[Any, float]]] = {}
    for trial in result.trials:
        value = as_number(getattr(trial, split).get(metric))
        if value is None or x not in trial.params:
            continue
        key = _text(trial.params.get(lines)) if lines else metric
        series.setdefault(key, []).append((trial.params[x], value))
    return {k: sorted(v, key=lambda p: _order(p[0])) for k, v in series.items()}


def _order(value: Any) -> tuple:
    number = as_number(value)
    return (0, number, "") if number is not None else (1, 0.0, str(value))


def sweep(result: Any, x: str, lines: str | None = None, metrics: Sequence[str] = ("recall@20", "ndcg@20"),
          split: str = "test") -> Any:
    """A metric against one swept setting ``x``, one line per value of ``lines`` (one panel per metric). A
    numeric ``x`` draws lines (a log axis when it spans decades); words (``importance``/``uniform``) draw
    grouped bars, in the order the search listed them."""
    swept = [x] + ([lines] if lines else [])
    missing = [name for name in swept if name not in result.space]
    if missing:
        raise DiffrecError(f"search {result.tune_id} did not sweep {missing[0]!r} "
                           f"(it swept: {', '.join(result.space)})")
    figure, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        drawn = sweep_points(result, x, lines, metric, split)
        if not drawn:
            raise DiffrecError(f"no trial of search {result.tune_id} has a {split} {metric}")
        xs = [p[0] for points in drawn.values() for p in points]
        if all(as_number(v) is not None for v in xs):
            for name, points in drawn.items():
                ax.plot(*zip(*points), marker="o", label=name if lines else None)
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
        else:
            _bars(ax, drawn, _categories(result.space[x], xs), labelled=bool(lines))
        ax.set(xlabel=x, ylabel=f"{split} {metric}")
        ax.grid(alpha=0.3, axis="y" if ax.patches else "both")
        if lines:
            ax.legend(fontsize="small", title=lines)
    figure.suptitle(f"{result.model} on {result.dataset}", fontsize="medium")
    return figure


def _categories(declared: Any, seen: list[Any]) -> list[str]:
    """The category labels in the order the search space listed them (a range has no order: sorted)."""
    order = [_text(v) for v in declared] if isinstance(declared, list) else sorted({_text(v) for v in seen})
    return [c for c in order if c in {_text(v) for v in seen}]


def _bars(ax: Any, drawn: dict[str, list[tuple[Any, float]]], categories: list[str], labelled: bool) -> None:
    """Grouped bars, one group per category; the value axis starts near the lowest bar so that differences
    of a few per cent show (as in the paper's figures)."""
    width = 0.8 / len(drawn)
    for n, (name, points) in enumerate(drawn.items()):
        offset = (n - (len(drawn) - 1) / 2) * width
        ax.bar([categories.index(_text(v)) + offset for v, _ in points], [y for _, y in points], width,
               label=name if labelled else None)
    values = [y for points in drawn.values() for _, y in points]
    spread = (max(values) - min(values)) or max(values) * 0.1
    ax.set_ylim(max(0.0, min(values) - spread), max(values) + spread / 2)
    ax.set_xticks(range(len(categories)), categories)
