"""Every ``--help`` fits 80 columns and says something about each option."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from diffrec_cli.cli.app import app


def commands(command=None, path=()):
    """(path, command) of every leaf command of the diffrec app."""
    command = command or typer.main.get_command(app)
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield path, command


COMMANDS = sorted(commands(), key=lambda pair: pair[0])


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_has_help_and_paragraphs_are_unbroken(path, command):
    options = [p for p in command.params if p.param_type_name == "option"]
    assert [p.opts for p in options if not p.help] == []
    # typer keeps a single line break of a later paragraph, which then breaks mid-line at any width
    for paragraph in (command.help or "").split("\n\n")[1:]:
        assert "\n" not in paragraph.strip(), paragraph


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_fits_80_columns(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.output
    home = [line for line in lines if "--home" in line]
    assert all("<str>" not in line and "DIR" in line for line in home)  # the data home is a folder


def test_train_help_keeps_its_sentences_whole(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text = " ".join(CliRunner().invoke(app, ["train", "--help"], terminal_width=80).output.split())
    assert "averaged over users with at least one" not in text  # the sentence read before
    assert "average over users with at least one ground-truth item in the split." in text
    assert "--seed <int> Random seed" in text
