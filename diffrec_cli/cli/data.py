"""``diffrec data …``: import, list, inspect and remove prepared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from diffrec_cli.cli.common import HomeOption, console, handles_errors

app = typer.Typer(help="Prepare and inspect datasets in the data home.", no_args_is_help=True)


@app.command("import-split")
@handles_errors
def import_split(
    folder: Path = typer.Argument(..., help="Folder with train_list.npy, valid_list.npy, test_list.npy [item_emb.npy]."),
    name: str = typer.Option(..., "--name", help="Name to store the dataset under."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dataset of that name."),
    home: HomeOption = None,
) -> None:
    """Import the DiffRec authors' split format (rows of [user, item] with dense ids)."""
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
    """List prepared datasets."""
    from diffrec_cli.data.store import DataHome

    store = DataHome(home)
    metas = [store.meta(n) for n in store.names()]
    if as_json:
        typer.echo(json.dumps([{"name": m["name"], **m["counts"]} for m in metas], indent=2))
        return
    if not metas:
        console.print(f"no datasets in {store.datasets_dir} (try 'diffrec data demo' or 'diffrec data import-split')")
        return
    table = Table("name", "users", "items", "train", "valid", "test", "density", title=f"datasets in {store.datasets_dir}")
    for m in metas:
        c = m["counts"]
        table.add_row(m["name"], f"{c['users']:,}", f"{c['items']:,}", f"{c['train']:,}", f"{c['valid']:,}",
                      f"{c['test']:,}", f"{c['density']:.4%}")
    console.print(table)


@app.command("info")
@handles_errors
def info(name: str = typer.Argument(..., help="Dataset name."), home: HomeOption = None,
         as_json: bool = typer.Option(False, "--json")) -> None:
    """Users, items, interactions per split and density of one dataset."""
    from diffrec_cli.data.store import DataHome

    meta = DataHome(home).meta(name)
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    _print_info(name, meta)


@app.command("remove")
@handles_errors
def remove(name: str = typer.Argument(...), home: HomeOption = None) -> None:
    """Delete a prepared dataset from the data home."""
    from diffrec_cli.data.store import DataHome

    DataHome(home).remove(name)
    console.print(f"removed dataset {name!r}")


def _print_info(name: str, meta: dict) -> None:
    c = meta["counts"]
    table = Table("statistic", "value", title=f"dataset {name}")
    for label, key in (("users", "users"), ("items", "items"), ("train interactions", "train"),
                       ("valid interactions", "valid"), ("test interactions", "test"),
                       ("all interactions", "interactions")):
        table.add_row(label, f"{c[key]:,}")
    table.add_row("density", f"{c['density']:.4%}")
    table.add_row("fingerprint", meta.get("fingerprint", "?"))
    source = meta.get("source", {})
    if source:
        table.add_row("source", ", ".join(f"{k}={v}" for k, v in source.items()))
    console.print(table)
