"""Shared CLI plumbing: the error boundary, the data-home option, plugin loading with visible problems."""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.home import resolve_home

console = Console()
err_console = Console(stderr=True)

HomeOption = Annotated[
    Optional[str],
    # the help names the home this process resolves to ($DIFFREC_HOME or the platform's user-data folder)
    typer.Option("--home", envvar="DIFFREC_HOME", metavar="DIR", show_envvar=False,
                 help=f"Data home for datasets and runs \\[default: {escape(str(resolve_home()))}, from "
                      f"$DIFFREC_HOME or the platform's data folder]."),
]


# The command line of each operation a library hint can name as its ``step`` (see errors.Hint).
STEP_COMMANDS = {
    "import": "diffrec data import {subject} --name NAME",
    "prepare": "diffrec data prepare {subject} --protocol clean --name {subject}-clean",
    "remove": "diffrec data remove {subject}",
}
STEP_PLACEHOLDERS = {"import": "FILE", "prepare": "LOG", "remove": "NAME"}


# Library keyword parameters whose command-line option is not simply ``--`` + the name.
FLAGS = {"fmt": "--format"}


def flag(option: str) -> str:
    """The command-line spelling of a library keyword parameter: ``max_trials`` -> ``--max-trials``."""
    return FLAGS.get(option) or "--" + option.replace("_", "-")


def word_hint(hint: Hint) -> str:
    """A library hint in the CLI's words, e.g. "use --separator or --format"."""
    value = "" if hint.value is None else str(hint.value)
    if hint.options:
        text = "use " + " or ".join(flag(o) for o in hint.options) + (f" {value}" if value else "")
    elif hint.settings:
        text = "use " + " or ".join(f"--set {s}={value or 'VALUE'}" for s in hint.settings)
    else:
        subject = hint.subject or STEP_PLACEHOLDERS.get(hint.step, "NAME")
        command = STEP_COMMANDS.get(hint.step, f"diffrec data {hint.step} {{subject}}").format(subject=subject)
        text = f"run '{command}'"
    return f"{text} to {hint.purpose}" if hint.purpose else text


def fail(message: str, hint: Hint | None = None, code: int = 2) -> None:
    """One line on stderr and exit status ``code`` (2: bad input): the contract for every user-fixable problem.

    With a hint: ``error: MESSAGE; HINT IN WORDS``.
    """
    line = f"{message}; {word_hint(hint)}" if hint is not None else message
    # escaped: messages quote user input and settings, whose [brackets] are not rich markup
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DiffrecError as exc:
            fail(str(exc), exc.hint, exc.exit_code)
        except MemoryError:
            fail("out of memory; try a smaller batch_size or eval_batch_size")
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which handles its own): no traceback
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    wrapper.handles_errors = True  # type: ignore[attr-defined]  # tests check every command has the boundary
    return wrapper


def registry():
    """The component registry; plugins load on first use, never at import time."""
    from diffrec_cli.plugins import get_plugins

    plugins = get_plugins()
    return plugins.registry


def show_plugin_problems(problems: list[str]) -> None:
    for line in problems:
        print(line, file=sys.stderr)
