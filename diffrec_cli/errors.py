"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class DiffrecError(Exception):
    """Bad input: unknown names, malformed files, impossible settings."""


class PluginMissingError(DiffrecError):
    """A checkpoint names a component whose providing plugin is not loaded."""
