"""The ``diffrec`` command. Commands live one group per file; this module only assembles them."""

from __future__ import annotations

import sys

import typer

from diffrec_cli import __version__
from diffrec_cli.cli import dashboard, data, plugins_cmd, serve, train
from diffrec_cli.cli import compare, embeddings, plot, runs_cmd, tune

app = typer.Typer(
    name="diffrec",
    help="Train, evaluate and serve diffusion recommender models (DiffRec, SIGIR 2023).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion; completions: cli/complete.py
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.add_typer(plot.app, name="plot")
app.add_typer(runs_cmd.app, name="runs")
app.command("train")(train.train_command)
app.command("eval")(serve.eval_command)
app.command("recommend")(serve.recommend_command)
app.add_typer(plugins_cmd.app, name="plugins")
app.command("tune")(tune.tune_command)
app.command("export-embeddings")(embeddings.export_embeddings_command)
app.command("dashboard")(dashboard.dashboard_command)
app.command("compare")(compare.compare_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"diffrec {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")) -> None:
    """Train, evaluate and serve diffusion recommender models (DiffRec, SIGIR 2023)."""


def main() -> None:
    # Plugins load here, when the command runs, so importing this module stays side-effect free.
    from diffrec_cli.cli.common import show_plugin_problems
    from diffrec_cli.plugins import get_plugins

    try:
        plugins = get_plugins()
        plugins.add_commands(app)
        show_plugin_problems(plugins.problems)
    except KeyboardInterrupt:  # Ctrl-C while plugins load: the status of any interrupted command
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    app()
