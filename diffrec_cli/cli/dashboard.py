"""``diffrec dashboard``: the Textual app over the data home."""

from __future__ import annotations

from diffrec_cli.cli.common import HomeOption, handles_errors


@handles_errors
def dashboard_command(home: HomeOption = None) -> None:
    """Browse, compare and watch runs in the terminal (keys in the footer; ctrl+p for every command)."""
    from diffrec_cli.tui.app import make_app

    make_app(home).run()
