"""Rendering shared by the CLI and the dashboard: tables, terminal charts and number formats.

Sits above the library core and below ``cli/`` and ``tui/``: both import from here, neither imports the other.
"""
