"""``diffrec runs …``: list, show, remove and export the runs in the data home (like ``mlflow runs``).

Reads run folders only through :func:`diffrec_cli.runs.read_run`, so nothing here loads torch.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import typer

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, handles_errors
from diffrec_cli.errors import DiffrecError, Hint

app = typer.Typer(help="List, inspect, remove and export training runs.", no_args_is_help=True)


def _records(home: Optional[str], names: list[str]):
    """The run records ``names`` resolve to (ids, unique prefixes or suffixes, or folders), all or none."""
    from diffrec_cli.home import HomeFolders
    from diffrec_cli.runs import read_run, resolve_run

    folder = HomeFolders(home).runs_dir
    return [read_run(resolve_run(folder, name)) for name in names]


@app.command("list")
@handles_errors
def list_runs(
    model: Optional[str] = typer.Option(None, "--model", "-m", autocompletion=complete.models,
                                        help="Only runs of this model."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", autocompletion=complete.datasets,
                                          help="Only runs on this dataset."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status: running, finished, "
                                         "failed, stopped or crashed (marked running, its process gone)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts (full ids, every best metric)."),
    home: HomeOption = None,
) -> None:
    """The runs in the data home, oldest first.

    The run column shows the shortest id the other commands accept (any unique prefix or suffix works).
    """
    from diffrec_cli.home import HomeFolders
    from diffrec_cli.render.runs import run_row, runs_table
    from diffrec_cli.runs import CRASHED, STATUSES, read_runs

    if status is not None and status not in (*STATUSES, CRASHED):
        raise DiffrecError(f"--status must be one of {', '.join((*STATUSES, CRASHED))}, got {status!r}")
    folder = HomeFolders(home).runs_dir
    records = [r for r in read_runs(folder)
               if (model is None or r.model == model) and (dataset is None or r.dataset == dataset)
               and (status is None or r.status == status)]
    if as_json:
        typer.echo(json.dumps([run_row(r) for r in records], indent=2))
        return
    if not records:
        console.print(f"no runs{' match' if model or dataset or status else ''} in {folder}")
        return
    console.print(runs_table(records, title=f"{len(records)} run(s) in {folder}"))


@app.command("show")
@handles_errors
def show_run(
    run: str = typer.Argument(..., autocompletion=complete.runs,
                              help="Run id (or a unique prefix or suffix) or run folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: config, status, evaluations and final."),
    home: HomeOption = None,
) -> None:
    """One run: where it is, its status, its metrics at the best epoch and its settings."""
    from diffrec_cli.render.metrics import metrics_table
    from diffrec_cli.render.runs import run_row, run_table, settings_table

    (record,) = _records(home, [run])
    if as_json:
        typer.echo(json.dumps({**run_row(record), "config": record.config, "final": record.final,
                               "evaluations": record.evaluations}, indent=2))
        return
    console.print(run_table(record))
    best = record.best()
    if best.valid or best.test:
        console.print(metrics_table(best.valid, best.test, record.ks, title=f"metrics at epoch {best.epoch}"))
    console.print(settings_table(record))


@app.command("rm")
@handles_errors
def remove_runs(
    runs: List[str] = typer.Argument(..., autocompletion=complete.runs,
                                     help="Run ids (or unique prefixes or suffixes) or run folders."),
    force: bool = typer.Option(False, "--force", help="Also remove runs marked running (e.g. left by a crash)."),
    home: HomeOption = None,
) -> None:
    """Delete runs: all those named, or none when one of them is unknown or still running."""
    from diffrec_cli.runs import RUNNING

    records = _records(home, runs)
    running = [r.id for r in records if r.status == RUNNING]
    if running and not force:
        raise DiffrecError(f"run {running[0]} is marked running; a training may still be writing it",
                           hint=Hint(options=("force",), purpose="remove it anyway"))
    for record in {r.path: r for r in records}.values():  # a run named twice is removed once
        shutil.rmtree(record.path)
        console.print(f"removed run {record.id}", highlight=False)


@app.command("export")
@handles_errors
def export_runs(
    runs: List[str] = typer.Argument(..., autocompletion=complete.runs,
                                     help="Run ids (or unique prefixes or suffixes) or run folders."),
    out: Path = typer.Option(..., "--out", "-o", help="A .csv or .parquet file ('-': CSV on standard output)."),
    home: HomeOption = None,
) -> None:
    """Every evaluation of the runs, one row each, to a CSV or Parquet file.

    Columns: run, model, dataset, epoch, seconds, loss, then valid_recall@20, ... and test_recall@20, ...
    """
    import polars as pl

    from diffrec_cli.atomic import atomic_path
    from diffrec_cli.render.runs import history_rows

    to_stdout = str(out) == "-"
    if not to_stdout and out.suffix not in (".csv", ".parquet"):
        raise DiffrecError(f"--out must end in .csv or .parquet (or be - for standard output), got {out.name!r}")
    columns, rows = history_rows(_records(home, runs))
    frame = pl.DataFrame(rows, schema={c: _column_type(c) for c in columns}, orient="row") if rows else \
        pl.DataFrame(schema={c: _column_type(c) for c in columns})
    if to_stdout:
        sys.stdout.write(frame.write_csv())
        return
    with atomic_path(out) as tmp:
        (frame.write_csv if out.suffix == ".csv" else frame.write_parquet)(tmp)
    console.print(f"wrote {frame.height:,} evaluations of {len(set(runs)):,} run(s) to {out}", highlight=False)


def _column_type(column: str):
    import polars as pl

    return {"run": pl.String, "model": pl.String, "dataset": pl.String, "epoch": pl.Int64}.get(column, pl.Float64)
