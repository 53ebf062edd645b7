"""``diffrec plugins``: what is installed and what each plugin registers; ``plugins new`` writes a new one."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from diffrec_cli.cli.common import console, handles_errors

app = typer.Typer(help="List loaded plugins (the default) or write a new plugin package.")


@app.callback(invoke_without_command=True)
@handles_errors
def plugins_command(ctx: typer.Context,
                    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List loaded plugins: name, version and the components each registers."""
    from diffrec_cli.plugins import get_plugins

    if ctx.invoked_subcommand is not None:
        return
    rows = get_plugins().listing()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("plugin", "version", "registers", title="diffrec plugins")
    for row in rows:
        registers = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in row["registers"].items())
        table.add_row(row["name"], row["version"], registers or "-")
    console.print(table)


@app.command("new")
@handles_errors
def new_command(
    name: str = typer.Argument(..., help="Plugin name, e.g. 'warmup': writes the package diffrec-warmup."),
    kind: str = typer.Option(..., "--kind", help="The component it provides: schedule, reweighting or model."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to write the package folder."),
) -> None:
    """Write a ready-to-install plugin package with one working component to edit.

    It holds pyproject.toml (the diffrec entry point), the component, a contract test and a README.
    """
    from diffrec_cli.plugin_template import new_plugin

    folder = new_plugin(name, kind, directory)
    console.print(f"wrote {folder}", highlight=False, markup=False)
    console.print(f"next: pip install -e '{folder}[test]' && diffrec plugins && python -m pytest -q {folder}",
                  highlight=False, markup=False, soft_wrap=True)
