"""Errors a user can fix. The CLI prints them as one line and exits with code 2.

The library says what is wrong in its own terms and never names a command-line flag: where a remedy is
known it travels as a :class:`Hint` (the parameter, setting or step that would fix it), and each front
end words the hint for its users (the CLI as ``--flag`` and ``diffrec ...`` commands).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """What would fix an error, in the library's terms; a front end turns it into words.

    ``options``: keyword parameters of the call that failed (as spelled in Python, e.g. ``"separator"``,
    ``"force"``); giving any one of them fixes the problem. ``settings``: setting names (recipe or
    training settings, e.g. ``"min_user"``) whose value would fix it. ``value``: the value to give the
    first option or setting, where one value is the fix. ``step``: an operation to run instead or first,
    named by its verb (``"import"``, ``"prepare"``, ``"remove"``), applied to ``subject`` (a dataset, log
    or file name; empty: any). ``purpose``: what following the hint achieves, in a few words
    (``"replace it"``).
    """

    options: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    value: str | None = None
    step: str = ""
    subject: str = ""
    purpose: str = ""

    def __post_init__(self) -> None:
        if bool(self.options) + bool(self.settings) + bool(self.step) != 1:
            raise ValueError("a hint names options, settings or a step (exactly one of them)")


class DiffrecError(Exception):
    """Bad input: unknown names, malformed files, impossible settings.

    ``str(error)`` is the message alone; ``error.hint`` (a :class:`Hint` or None) is the remedy.
    """

    def __init__(self, message: str, *, hint: Hint | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def with_hint(self, hint: Hint) -> DiffrecError:
        """The same error (same class and message) with ``hint``: for a caller that knows the remedy."""
        return type(self)(str(self), hint=hint)

    #: the CLI's exit status for this error: 2 (bad input) unless a subclass says otherwise
    exit_code = 2


class TrainingFailed(DiffrecError):
    """Training itself went wrong (a diverging loss): the run is marked failed and the CLI exits 1."""

    exit_code = 1


class PluginMissingError(DiffrecError):
    """A checkpoint names a component whose providing plugin is not loaded."""
