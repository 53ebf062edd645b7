"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class DiffrecError(Exception):
    """Bad input: unknown names, malformed files, impossible settings."""

    #: the CLI's exit status for this error: 2 (bad input) unless a subclass says otherwise
    exit_code = 2


class TrainingFailed(DiffrecError):
    """Training itself went wrong (a diverging loss): the run is marked failed and the CLI exits 1."""

    exit_code = 1


class PluginMissingError(DiffrecError):
    """A checkpoint names a component whose providing plugin is not loaded."""
