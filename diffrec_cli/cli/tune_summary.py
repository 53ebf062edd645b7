"""The summary ``diffrec tune`` prints: one line per trial, then the trials' metrics at every K, in 80 columns.

No cell is ever cut: a table's columns take the width of their longest value or header, and the metric
columns are split over as many tables as the terminal's width needs.
"""

from __future__ import annotations

import io
from typing import Any

from rich import box
from rich.console import Console
from rich.cells import cell_len
from rich.table import Table

from diffrec_cli.metrics import METRICS
from diffrec_cli.render.metrics import metric_label

SHOWN_METRICS = ("recall", "ndcg")  # per trial at every K; the rest of METRICS is in tune.json
PADDING = 1  # cells on each side of a column


def format_setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_setting(v) for v in value) + "]"
    return str(value)


def _table() -> Table:
    return Table(box=box.SIMPLE_HEAD, padding=(0, PADDING), collapse_padding=True, pad_edge=False, show_edge=False)


def _width(table: Table) -> int:
    """The table's width drawn without a limit (what the terminal must hold)."""
    wide = Console(width=10_000, file=io.StringIO(), color_system=None)
    with wide.capture() as captured:
        wide.print(table)
    return max(cell_len(line) for line in captured.get().splitlines())


def ordered_trials(result: Any) -> list[tuple[str, Any]]:
    """(rank, trial): scored trials best first, then the failed and skipped ones (rank "-")."""
    ranked = result.ranked
    return [*((str(n), t) for n, t in enumerate(ranked, start=1)),
            *(("-", t) for t in result.trials if t not in ranked)]


def trials_table(result: Any, console: Console) -> Table:
    """#, trial, each swept setting, the validation score, best epoch, seconds and status: one line per trial.
    When the settings do not fit the width side by side they share one column as ``key=value`` pairs."""
    names = list(result.space)
    rows = ordered_trials(result)
    for together in (False, True):
        table = _table()
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("trial", justify="right", no_wrap=True)
        if together:
            table.add_column("settings", overflow="fold")
        else:
            for name in names:
                table.add_column(name, no_wrap=True)
        table.add_column(f"valid {metric_label(result.metric)}", justify="right", no_wrap=True)
        for header in ("epoch", "s", "status"):
            table.add_column(header, justify="left" if header == "status" else "right", no_wrap=True)
        for rank, trial in rows:
            settings = [format_setting(trial.params.get(n, "")) for n in names]
            if together:
                settings = [" ".join(f"{n}={v}" for n, v in zip(names, settings))]
            score = trial.score(result.metric)
            table.add_row(rank, str(trial.number), *settings, "-" if score is None else f"{score:.4f}",
                          str(trial.best_epoch or "-"), f"{trial.seconds:.1f}", trial.status,
                          style="bold" if rank == "1" else None)
        if _width(table) <= console.width:
            break
    return table


def measured(result: Any) -> list[str]:
    """The shown metrics the trials measured (``recall@10``, ``ndcg@10``, ``recall@20``, ...), by K."""
    keys = {k for t in result.trials for split in (t.valid, t.test) for k in split}
    by_k = sorted({int(k.partition("@")[2]) for k in keys if k.partition("@")[2].isdigit()})
    return [f"{m}@{k}" for k in by_k for m in SHOWN_METRICS if f"{m}@{k}" in keys]


def metric_tables(result: Any, split: str, console: Console) -> list[Table]:
    """The trials' ``split`` metrics at every K, in as many tables as the width needs (rows as trials_table)."""
    metrics = measured(result)
    rows = ordered_trials(result)
    tables: list[Table] = []
    start = 0
    while start < len(metrics):
        end = len(metrics)
        while True:
            table = _table()
            table.add_column("#", justify="right", no_wrap=True)
            table.add_column("trial", justify="right", no_wrap=True)
            for key in metrics[start:end]:
                table.add_column(metric_label(key), justify="right", no_wrap=True)
            for rank, trial in rows:
                values = getattr(trial, split)
                table.add_row(rank, str(trial.number), *(f"{values[k]:.4f}" if k in values else "-"
                                                          for k in metrics[start:end]))
            if end - start == 1 or _width(table) <= console.width:
                break
            end -= 1
        tables.append(table)
        start = end
    return tables


def print_summary(console: Console, result: Any) -> None:
    """Everything ``diffrec tune`` prints after the search (the tables fit ``console.width``)."""
    title = f"{result.model} on {result.dataset}: {len(result.trials)} trials, ranked by validation {result.metric}"
    console.print(title, style="bold", highlight=False)
    console.print(trials_table(result, console))
    others = [m for m in METRICS if m not in SHOWN_METRICS]
    for split, caption in (("valid", "validation metrics at each trial's best epoch"),
                           ("test", "test metrics (reported, never used for selection)")):
        console.print(caption, style="bold", highlight=False)
        for table in metric_tables(result, split, console):
            console.print(table)
    console.print(f"{', '.join(others)} per trial: in tune.json", style="dim", highlight=False)
