"""``diffrec plugins``: what is installed and what each plugin registers."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from diffrec_cli.cli.common import console, handles_errors


@handles_errors
def plugins_command(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")) -> None:
    """List loaded plugins: name, version and the components each registers."""
    from diffrec_cli.plugins import get_plugins

    rows = get_plugins().listing()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("plugin", "version", "registers", title="diffrec plugins")
    for row in rows:
        registers = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(names)}" for kind, names in row["registers"].items())
        table.add_row(row["name"], row["version"], registers or "-")
    console.print(table)
