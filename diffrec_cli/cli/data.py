"""``diffrec data …``: import logs, prepare datasets with a protocol, generate, list, inspect, remove."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

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
    from diffrec_cli.data.ingest import detect_format, import_split_folder, read_log
    from diffrec_cli.data.store import DataHome, check_name

    store = DataHome(home)
    check_name(name)
    reader = detect_format(file, fmt)
    if reader.produces == "dataset":
        store.claim(name, "dataset", force=force)
        data = import_split_folder(file, name)
        target = store.save(data, force=force)
        _print_info(name, store.meta(name))
        console.print(f"saved to {target}")
        return
    store.claim(name, "log", force=force)
    log = read_log(file, reader.name, user=user, item=item, rating=rating, time=time, separator=separator)
    target = store.save_log(log, name, force=force)
    _print_log_info(name, store.log_meta(name))
    console.print(f"saved to {target}")
    console.print(f"next: diffrec data prepare {name} --protocol clean --name {name}-clean")


@app.command("prepare")
@handles_errors
def prepare(
    source: str = typer.Argument(..., help="An imported log (diffrec data import), or a log file to read now."),
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
    from diffrec_cli.data.ingest import read_log
    from diffrec_cli.data.recipes import make_recipe
    from diffrec_cli.data.store import DataHome, check_name
    from diffrec_cli.errors import DiffrecError

    store = DataHome(home)
    check_name(name)
    recipe = make_recipe(protocol, parse_sets(sets))
    store.claim(name, "dataset", force=force)
    if _is_name(source) and store.log_exists(source):
        log = store.load_log(source)
    elif Path(source).is_file():
        log = read_log(Path(source))
    elif _is_name(source) and store.exists(source):
        raise DiffrecError(f"{source!r} is a prepared dataset; 'prepare' works on a raw log "
                           f"('diffrec data import FILE --name NAME' imports one)")
    else:
        known = ", ".join(store.log_names()) or "none yet"
        raise DiffrecError(f"no log named {source!r} in {store.logs_dir} and no such file (logs: {known})")
    data = recipe.prepare(log, name)
    target = store.save(data, force=force)
    _print_info(name, store.meta(name))
    console.print(f"saved to {target}")


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
    from diffrec_cli.data.demo import generate_log
    from diffrec_cli.data.ingest import log_from_frame
    from diffrec_cli.data.store import DataHome, check_name
    from diffrec_cli.errors import DiffrecError

    store = DataHome(home)
    check_name(name)
    store.claim(name, "log", force=force)
    writers = {".csv": lambda f, p: f.write_csv(p), ".tsv": lambda f, p: f.write_csv(p, separator="\t"),
               ".parquet": lambda f, p: f.write_parquet(p)}
    if out is not None and out.suffix.lower() not in writers:
        raise DiffrecError(f"--out {out}: use a .csv, .tsv or .parquet file name")
    frame = generate_log(users, items, interactions, seed=seed)
    log = log_from_frame(frame, source={"format": "generated", "users": users, "items": items,
                                        "interactions": interactions, "seed": seed})
    if out is not None:
        from diffrec_cli.atomic import atomic_path

        with atomic_path(out) as tmp:
            writers[out.suffix.lower()](frame, tmp)
        console.print(f"wrote {frame.height:,} rows to {out}")
    target = store.save_log(log, name, force=force)
    _print_log_info(name, store.log_meta(name))
    console.print(f"saved to {target}")


@app.command("import-split")
@handles_errors
def import_split(
    folder: Path = typer.Argument(..., help="Folder with train_list.npy, valid_list.npy, test_list.npy \\[item_emb.npy]."),
    name: str = typer.Option(..., "--name", help="Name to store the dataset under."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset of that name."),
    home: HomeOption = None,
) -> None:
    """Import the DiffRec authors' split format (rows of \\[user, item] with dense ids)."""
    from diffrec_cli.data.ingest import import_split_folder
    from diffrec_cli.data.store import DataHome, check_name

    store = DataHome(home)
    check_name(name)
    if store.exists(name) and not force:
        from diffrec_cli.errors import DiffrecError

        raise DiffrecError(f"dataset {name!r} already exists in {store.datasets_dir} (use --force to replace it)")
    data = import_split_folder(folder, name)
    target = store.save(data, force=force)
    _print_info(data.name, store.meta(name))
    console.print(f"saved to {target}")


@app.command("demo")
@handles_errors
def demo(force: bool = typer.Option(False, "--force", help="Rebuild it if present."), home: HomeOption = None) -> None:
    """Build the bundled synthetic demo dataset (deterministic; also built on first use)."""
    from diffrec_cli.data.demo import build_demo
    from diffrec_cli.data.store import DEMO_NAME, DataHome

    store = DataHome(home)
    if store.exists(DEMO_NAME) and not force:
        console.print(f"dataset {DEMO_NAME!r} already exists in {store.datasets_dir}")
        return
    store.save(build_demo(), force=force)
    _print_info(DEMO_NAME, store.meta(DEMO_NAME))


@app.command("list")
@handles_errors
def list_datasets(home: HomeOption = None, as_json: bool = typer.Option(False, "--json")) -> None:
    """List prepared datasets and imported raw logs."""
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    metas = [store.meta(n) for n in store.names()]
    logs = [store.log_meta(n) for n in store.log_names()]
    if as_json:
        rows = [{"name": m["name"], "kind": "dataset", "protocol": _origin(m), **m["counts"]} for m in metas]
        rows += [{"name": m["name"], "kind": "log", "format": m.get("source", {}).get("format"),
                  **{k: m.get(k) for k in ("rows", "users", "items", "duplicates_dropped")}} for m in logs]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not metas and not logs:
        console.print(f"no datasets in {store.root} (try 'diffrec data demo', 'diffrec data import' or "
                      f"'diffrec data generate')")
        return
    if metas:
        table = Table("name", "users", "items", "train", "valid", "test", "density", "protocol",
                      title=f"datasets in {store.datasets_dir}")
        for m in metas:
            c = m["counts"]
            table.add_row(m["name"], f"{c['users']:,}", f"{c['items']:,}", f"{c['train']:,}", f"{c['valid']:,}",
                          f"{c['test']:,}", f"{c['density']:.4%}", _origin(m))
        console.print(table)
    if logs:
        table = Table("name", "rows", "users", "items", "ratings", "times", "format",
                      title=f"raw logs in {store.logs_dir} (diffrec data prepare NAME ...)")
        for m in logs:
            table.add_row(m["name"], f"{m['rows']:,}", f"{m['users']:,}", f"{m['items']:,}",
                          "yes" if m.get("has_rating") else "no", "yes" if m.get("has_time") else "no",
                          str(m.get("source", {}).get("format", "?")))
        console.print(table)


@app.command("info")
@handles_errors
def info(name: str = typer.Argument(..., help="Dataset (or raw log) name."), home: HomeOption = None,
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Table 1 of the paper for one dataset: users, items, interactions per split, density, ranges, recipe."""
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    is_log = not store.exists(name) and store.log_exists(name)
    meta = store.log_meta(name) if is_log else store.meta(name)
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    (_print_log_info if is_log else _print_info)(name, meta)


@app.command("remove")
@handles_errors
def remove(names: List[str] = typer.Argument(..., help="Datasets or raw logs to delete."),
           home: HomeOption = None) -> None:
    """Delete prepared datasets or raw logs from the data home (all named ones, or none if one is unknown)."""
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.errors import DiffrecError

    store = DataHome(home)
    for name in names:
        if not store.exists(name) and not store.log_exists(name):
            raise DiffrecError(f"no dataset named {name!r} in {store.datasets_dir} (nor a raw log in {store.logs_dir})")
    for name in dict.fromkeys(names):
        kind = store.remove(name)
        console.print(f"removed {'dataset' if kind == 'dataset' else 'raw log'} {name!r}")


def _is_name(text: str) -> bool:
    from diffrec_cli.data.store import NAME_PATTERN

    return bool(NAME_PATTERN.match(text))


def _origin(meta: dict) -> str:
    """The recipe's protocol, or where a dataset came from when no recipe made it."""
    recipe = meta.get("recipe") or {}
    return str(recipe.get("protocol") or meta.get("source", {}).get("format") or "?")


def _when(seconds: int | float | None) -> str:
    if seconds is None:
        return "–"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d")


def _range_text(ranges: dict | None, key: str) -> str:
    span = (ranges or {}).get(f"{key}_range")
    if not span:
        return "–"
    if key == "time":
        return f"{_when(span[0])} → {_when(span[1])}"
    return f"{span[0]:g} – {span[1]:g}"


def _print_info(name: str, meta: dict) -> None:
    c = meta["counts"]
    table = Table("statistic", "value", title=f"dataset {name}")
    for label, key in (("users", "users"), ("items", "items"), ("train interactions", "train"),
                       ("valid interactions", "valid"), ("test interactions", "test"),
                       ("all interactions", "interactions")):
        table.add_row(label, f"{c[key]:,}")
    table.add_row("density", f"{c['density']:.4%}")
    ranges = meta.get("ranges") or {}
    for key in ("rating", "time"):
        for split in ("train", "valid", "test"):
            if ranges.get(split, {}).get(f"{key}_range"):
                table.add_row(f"{key} range ({split})", _range_text(ranges[split], key))
    recipe = meta.get("recipe")
    if recipe:
        table.add_row("recipe", ", ".join(f"{k}={v}" for k, v in recipe.items()))
    report = meta.get("report")
    if report:
        table.add_row("recipe report", ", ".join(f"{k}={v}" for k, v in report.items()))
    table.add_row("fingerprint", meta.get("fingerprint", "?"))
    source = meta.get("source", {})
    if source:
        table.add_row("source", ", ".join(f"{k}={v}" for k, v in source.items()))
    console.print(table)


def _print_log_info(name: str, meta: dict) -> None:
    table = Table("statistic", "value", title=f"raw log {name}")
    table.add_row("rows", f"{meta['rows']:,}")
    table.add_row("rows read", f"{meta['rows_read']:,}")
    table.add_row("duplicate rows dropped", f"{meta['duplicates_dropped']:,}")
    table.add_row("users", f"{meta['users']:,}")
    table.add_row("items", f"{meta['items']:,}")
    table.add_row("density", f"{meta['rows'] / max(1, meta['users'] * meta['items']):.4%}")
    table.add_row("rating range", _range_text(meta, "rating") if meta.get("has_rating") else "no ratings")
    table.add_row("time range", _range_text(meta, "time") if meta.get("has_time") else "no timestamps")
    source = dict(meta.get("source", {}))
    columns = source.pop("columns", None)
    if columns:
        table.add_row("columns", ", ".join(f"{k}={v}" for k, v in columns.items()))
    if source:
        table.add_row("source", ", ".join(f"{k}={v}" for k, v in source.items()))
    console.print(table)
