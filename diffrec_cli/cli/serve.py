"""``diffrec eval`` and ``diffrec recommend``: load a run's checkpoint and use it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, err_console, handles_errors
from diffrec_cli.errors import DiffrecError

if TYPE_CHECKING:
    import polars as pl

    from diffrec_cli.serve import Served


def recommendations_table(frame: "pl.DataFrame", title: str = "recommendations") -> Table:
    table = Table("user", "top items (best first)", title=title)
    for user, group in frame.group_by("user", maintain_order=True):
        table.add_row(str(user[0]), ", ".join(str(item) for item in group["item"].to_list()))
    return table


@handles_errors
def eval_command(
    run: str = typer.Argument(..., autocompletion=complete.runs, help="Run id (or a unique prefix or suffix), run directory, or checkpoint path."),
    split: str = typer.Option("both", "--split", help="valid, test or both."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    home: HomeOption = None,
) -> None:
    """Full-ranking evaluation of a checkpoint. Validation masks training items; test masks training and
    validation items. Metrics average over users with at least one ground-truth item."""
    from diffrec_cli.cli.common import registry
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.render.metrics import metrics_table
    from diffrec_cli.runs import CRASHED, RUNNING, STOPPED
    from diffrec_cli.serve import evaluate_served, load_served

    splits = {"both": ("valid", "test"), "valid": ("valid",), "test": ("test",)}.get(split)
    if splits is None:
        raise DiffrecError(f"--split must be valid, test or both, got {split!r}")
    served = load_served(run, registry(), home=DataHome(home), device=device)
    if served.run_status in (CRASHED, RUNNING, STOPPED):
        how = {CRASHED: "crashed (its process is gone)", RUNNING: "is still training", STOPPED: "was stopped"}
        err_console.print(f"note: run {served.meta.run_id} {how[served.run_status]}; evaluating its last "
                          f"checkpoint (epoch {served.meta.epoch})", highlight=False, soft_wrap=True)
    metrics = evaluate_served(served, splits)
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    console.print(metrics_table(metrics.get("valid", {}), metrics.get("test", {}), served.ks,
                                title=f"{served.meta.model.name} on {served.data.name}"))


@handles_errors
def recommend_command(
    run: str = typer.Argument(..., autocompletion=complete.runs, help="Run id (or a unique prefix or suffix), run directory, or checkpoint path."),
    user: Optional[list[str]] = typer.Option(None, "--user", "-u", help="Raw user id; repeatable."),
    users_file: Optional[Path] = typer.Option(None, "--users-file", help="File with one raw user id per line (or a CSV/Parquet with a 'user' column)."),
    k: int = typer.Option(10, "-k", "--top", help="How many items per user."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write user,rank,item,score to .csv or .parquet "
                                       "('-': CSV on standard output)."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON (ids keep their type)."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Leave out users the dataset does not know "
                                      "(listed on standard error) instead of failing."),
    cold_start: Optional[str] = typer.Option(None, "--cold-start", metavar="popular",
                                             help="Give users the dataset does not know the most popular items "
                                                  "(scored by their number of training interactions)."),
    all_users: bool = typer.Option(False, "--all-users", help="Every user of the dataset, written to --out "
                                   "(.parquet or .csv) batch by batch as they are scored."),
    live: bool = typer.Option(True, "--live/--no-live", help="With --all-users: a progress bar on a terminal; "
                              "--no-live prints plain lines."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    home: HomeOption = None,
) -> None:
    """Top-k items a user has not interacted with in any split, by the model's scores."""
    from diffrec_cli.cli.common import registry
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.serve import load_served, recommend

    if k <= 0:
        raise DiffrecError(f"-k must be positive, got {k}")
    if all_users:
        _check_all_users(out, bool(user or users_file), as_json, skip_unknown or cold_start is not None)
        served = load_served(run, registry(), home=DataHome(home), device=device)
        _recommend_all(served, out, k, live)
        return
    users = list(user or []) + (_read_users(users_file) if users_file is not None else [])
    if not users:
        raise DiffrecError("give --user ID (repeatable) or --users-file FILE")
    _check_destination(out, as_json)
    served = load_served(run, registry(), home=DataHome(home), device=device)
    recs = recommend(served.model, served.data, users, k=k, inputs=served.inputs, skip_unknown=skip_unknown,
                     cold_start=cold_start)
    if recs.unknown:
        shown = ", ".join(str(u) for u in recs.unknown[:10]) + (", ..." if len(recs.unknown) > 10 else "")
        done = "skipped" if cold_start is None else "gave the most popular items to"
        err_console.print(f"{done} {len(recs.unknown)} unknown user(s): {shown}", highlight=False, markup=False)
    _show_recommendations(recs.frame, out, as_json, title=f"top {k} for {len(users)} user(s)")


def _check_all_users(out: Optional[Path], users_given: bool, as_json: bool, unknown_options: bool) -> None:
    if users_given:
        raise DiffrecError("--all-users recommends for every user; leave out --user and --users-file")
    if as_json:
        raise DiffrecError("--all-users writes a file; leave out --json")
    if unknown_options:
        raise DiffrecError("--all-users recommends for the dataset's own users; leave out --skip-unknown "
                           "and --cold-start")
    if out is None or str(out) == "-" or out.suffix not in (".csv", ".parquet"):
        got = "" if out is None else f", got {str(out)!r}"
        raise DiffrecError(f"--all-users needs --out FILE.parquet (or .csv){got}")


def _recommend_all(served: "Served", out: Path, k: int, live: bool) -> None:
    """Every user's top k into ``out`` with a progress bar on a terminal, else a plain line per tenth."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from diffrec_cli.serve import write_all_recommendations

    total = served.data.n_users
    bar = Progress(TextColumn("recommending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console, disable=not (live and console.is_terminal), transient=True)
    task = bar.add_task("users", total=total)
    done = [0]

    def on_batch(users: int) -> None:
        before, done[0] = done[0], done[0] + users
        bar.advance(task, users)
        if bar.disable and (10 * done[0]) // total > (10 * before) // total:
            console.print(f"recommended for {done[0]:,}/{total:,} users", highlight=False)

    with bar:
        rows = write_all_recommendations(served.model, served.data, out, k, inputs=served.inputs,
                                         on_batch=on_batch)
    console.print(f"wrote {rows:,} rows for {total:,} users to {out}", highlight=False, soft_wrap=True)


def _check_destination(out: Optional[Path], as_json: bool) -> None:
    if out is not None and as_json:
        raise DiffrecError("--json prints the rows; leave out --out (or --out - for CSV)")
    if out is not None and str(out) != "-" and out.suffix not in (".csv", ".parquet"):
        raise DiffrecError(f"--out must end in .csv or .parquet (or be - for standard output), got {out.name!r}")


def _show_recommendations(frame: "pl.DataFrame", out: Optional[Path], as_json: bool, title: str) -> None:
    """The rows as JSON or CSV on standard output (for scripts), as a file, or as a table."""
    from diffrec_cli.atomic import atomic_path

    if as_json:
        typer.echo(json.dumps(frame.to_dicts(), indent=2))
    elif out is not None and str(out) == "-":
        sys.stdout.write(frame.write_csv())
        sys.stdout.flush()
    elif out is not None:
        with atomic_path(out) as tmp:
            (frame.write_csv if out.suffix == ".csv" else frame.write_parquet)(tmp)
        users = frame["user"].n_unique()
        console.print(f"wrote {frame.height:,} rows for {users:,} users to {out}")
    else:
        console.print(recommendations_table(frame, title=title))


def _read_users(path: Path) -> list[str]:
    import polars as pl

    if not path.is_file():
        raise DiffrecError(f"users file {path} not found")
    try:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        elif path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        else:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DiffrecError(f"users file {path}: line {line} is not UTF-8 text") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DiffrecError(f"cannot read users file {path}: {first}") from None
    if "user" not in frame.columns:
        raise DiffrecError(f"users file {path} has no 'user' column (columns: {', '.join(frame.columns)})")
    return [str(u) for u in frame["user"].to_list()]
