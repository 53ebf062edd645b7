"""``diffrec data …``: import logs, prepare datasets with a protocol, generate, list, inspect, remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from diffrec_cli.cli import complete
from diffrec_cli.cli.common import HomeOption, console, handles_errors

app = typer.Typer(help="Import interaction logs, prepare datasets (clean, noisy, temporal) and inspect them.",
                  no_args_is_help=True)


@app.command("import")
@handles_errors
def import_log(
    file: Path = typer.Argument(..., help="CSV/TSV/Parquet log, MovieLens ratings.dat or u.data, RecBole .inter, "
                                          "or the authors' split folder."),
    name: str = typer.Option(..., "--name", help="Name to store it under."),
    fmt: Optional[str] = typer.Option(None, "--format", help="csv, tsv, parquet, ml-1m, ml-100k, recbole or "
                                                            "split-folder \\[default: from the file name]."),
    user: Optional[str] = typer.Option(None, "--user", help="User id column \\[default: guessed]."),
    item: Optional[str] = typer.Option(None, "--item", help="Item id column \\[default: guessed]."),
    rating: Optional[str] = typer.Option(None, "--rating", help="Rating column \\[default: guessed; none is fine]."),
    time: Optional[str] = typer.Option(None, "--time", help="Timestamp column (numbers or dates) \\[default: guessed]."),
    separator: Optional[str] = typer.Option(None, "--separator", help="Field separator of a CSV/TSV file."),
    force: bool = typer.Option(False, "--force", help="Replace an existing log (or dataset) of that name."),
    home: HomeOption = None,
) -> None:
    """Import an interaction log (for 'diffrec data prepare'); a split folder becomes a dataset directly."""
    from diffrec_cli.data.operations import import_file
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    stored = import_file(store, file, name, fmt=fmt, force=force, user=user, item=item, rating=rating, time=time,
                         separator=separator)
    _print_stored(store, stored)
    if stored.kind == "log":
        console.print(f"next: diffrec data prepare {name} --protocol clean --name {name}-clean")


@app.command("prepare")
@handles_errors
def prepare(
    source: str = typer.Argument(..., autocompletion=complete.logs, help="An imported log (diffrec data import), or a log file to read now."),
    protocol: str = typer.Option("clean", "--protocol", help="clean, noisy-natural, noisy-random or temporal."),
    name: str = typer.Option(..., "--name", help="Name of the prepared dataset."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Recipe setting key=value (repeatable), e.g. "
                                                                  "min_rating=4, min_user=10, ratios=0.7,0.2,0.1, "
                                                                  "split=global, proportion=0.2, seed=1."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset of that name."),
    home: HomeOption = None,
) -> None:
    """Build train/valid/test from a log with one of the paper's protocols (§4.1.1)."""
    from diffrec_cli.config import parse_sets
    from diffrec_cli.data.operations import prepare as prepare_dataset
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    stored = prepare_dataset(store, source, name, protocol=protocol, settings=parse_sets(sets), force=force)
    _print_stored(store, stored)


@app.command("generate")
@handles_errors
def generate(
    name: str = typer.Option(..., "--name", help="Name to store the synthetic log under."),
    users: int = typer.Option(..., "--users", min=1, help="Number of users."),
    items: int = typer.Option(..., "--items", min=2, help="Number of items."),
    interactions: int = typer.Option(..., "--interactions", min=1, help="Number of interactions (about)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same log)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the log as a .csv, .tsv or .parquet file."),
    force: bool = typer.Option(False, "--force", help="Replace an existing log of that name."),
    home: HomeOption = None,
) -> None:
    """Generate a synthetic log: long-tailed popularity and activity, drifting tastes, ratings 1–5, times."""
    from diffrec_cli.data.operations import generate as generate_log
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    stored = generate_log(store, name, users=users, items=items, interactions=interactions, seed=seed, out=out,
                          force=force)
    if out is not None:
        console.print(f"wrote {store.log_meta(name)['rows']:,} rows to {out}")
    _print_stored(store, stored)


@app.command("import-split")
@handles_errors
def import_split(
    folder: Path = typer.Argument(..., help="Folder with train_list.npy, valid_list.npy, test_list.npy \\[item_emb.npy]."),
    name: str = typer.Option(..., "--name", help="Name to store the dataset under."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset of that name."),
    home: HomeOption = None,
) -> None:
    """Import the DiffRec authors' split format (rows of \\[user, item] with dense ids)."""
    from diffrec_cli.data.operations import import_file
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    _print_stored(store, import_file(store, folder, name, fmt="split-folder", force=force))


@app.command("demo")
@handles_errors
def demo(force: bool = typer.Option(False, "--force", help="Rebuild it if present."), home: HomeOption = None) -> None:
    """Build the bundled synthetic demo dataset (deterministic; also built on first use)."""
    from diffrec_cli.data.operations import build_demo_dataset
    from diffrec_cli.data.store import DEMO_NAME, DataHome
    from diffrec_cli.render.datasets import dataset_info_table

    store = DataHome(home)
    if build_demo_dataset(store, force=force) is None:
        console.print(f"dataset {DEMO_NAME!r} already exists in {store.datasets_dir}")
        return
    console.print(dataset_info_table(DEMO_NAME, store.meta(DEMO_NAME)))


@app.command("list")
@handles_errors
def list_datasets(home: HomeOption = None, as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List prepared datasets and imported raw logs."""
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.render.datasets import dataset_list_table, log_list_table, origin

    store = DataHome(home)
    metas = [store.meta(n) for n in store.names()]
    logs = [store.log_meta(n) for n in store.log_names()]
    if as_json:
        rows = [{"name": m["name"], "kind": "dataset", "protocol": origin(m), **m["counts"]} for m in metas]
        rows += [{"name": m["name"], "kind": "log", "format": m.get("source", {}).get("format"),
                  **{k: m.get(k) for k in ("rows", "users", "items", "duplicates_dropped")}} for m in logs]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not metas and not logs:
        console.print(f"no datasets in {store.root} (try 'diffrec data demo', 'diffrec data import' or "
                      f"'diffrec data generate')")
        return
    if metas:
        console.print(dataset_list_table(metas, title=f"datasets in {store.datasets_dir}"))
    if logs:
        console.print(log_list_table(logs, title=f"raw logs in {store.logs_dir} (diffrec data prepare NAME ...)"))


@app.command("info")
@handles_errors
def info(name: str = typer.Argument(..., autocompletion=complete.datasets_and_logs, help="Dataset (or raw log) name."), home: HomeOption = None,
         as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """Table 1 of the paper for one dataset: users, items, interactions per split, density, ranges, recipe."""
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.render.datasets import dataset_info_table, log_info_table

    kind, meta = DataHome(home).describe(name)
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    console.print((log_info_table if kind == "log" else dataset_info_table)(name, meta))


@app.command("remove")
@handles_errors
def remove(names: List[str] = typer.Argument(..., autocompletion=complete.datasets_and_logs, help="Datasets or raw logs to delete."),
           home: HomeOption = None) -> None:
    """Delete prepared datasets or raw logs from the data home (all named ones, or none if one is unknown)."""
    from diffrec_cli.data.store import DataHome

    for name, kind in DataHome(home).remove_all(names):
        console.print(f"removed {'dataset' if kind == 'dataset' else 'raw log'} {name!r}")


def _print_stored(store, stored) -> None:
    """The info table of what an operation stored, and where."""
    from diffrec_cli.render.datasets import dataset_info_table, log_info_table

    if stored.kind == "log":
        console.print(log_info_table(stored.name, store.log_meta(stored.name)))
    else:
        console.print(dataset_info_table(stored.name, store.meta(stored.name)))
    console.print(f"saved to {stored.path}")
