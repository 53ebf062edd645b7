"""Shared CLI plumbing: the error boundary, the data-home option, plugin loading with visible problems."""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from diffrec_cli.errors import DiffrecError

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Optional[str],
    typer.Option("--home", envvar="DIFFREC_HOME", help="Data home for datasets and runs \\[default: ~/.local/share/diffrec]."),
]


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, exit code 2: the contract for every user-fixable problem."""
    # escaped: messages quote user input and settings, whose [brackets] are not rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DiffrecError as exc:
            fail(str(exc), exc.exit_code)
        except MemoryError:
            fail("out of memory; try a smaller batch_size or eval_batch_size")
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own): no traceback
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def registry():
    """The component registry; plugins load on first use, never at import time."""
    from diffrec_cli.plugins import get_plugins

    plugins = get_plugins()
    return plugins.registry


def show_plugin_problems(problems: list[str]) -> None:
    for line in problems:
        print(line, file=sys.stderr)
