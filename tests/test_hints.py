"""Errors carry a hint in library terms; the CLI words it: ``error: MESSAGE; HINT``, exit code 2."""

from __future__ import annotations

import ast
import pathlib
import re

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import diffrec_cli
from diffrec_cli.cli.app import app
from diffrec_cli.cli.common import handles_errors, word_hint
from diffrec_cli.errors import DiffrecError, Hint, PluginMissingError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@pytest.mark.parametrize("hint, words", [
    (Hint(options=("force",), purpose="replace it"), "use --force to replace it"),
    (Hint(options=("separator", "fmt")), "use --separator or --format"),
    (Hint(options=("max_trials",), value="5"), "use --max-trials 5"),
    (Hint(settings=("min_user",), purpose="keep more users"), "use --set min_user=VALUE to keep more users"),
    (Hint(settings=("strategy",), value="random"), "use --set strategy=random"),
    (Hint(step="remove", subject="old"), "run 'diffrec data remove old'"),
    (Hint(step="prepare", subject="raw", purpose="make a dataset of it"),
     "run 'diffrec data prepare raw --protocol clean --name raw-clean' to make a dataset of it"),
    (Hint(step="import", purpose="import one"), "run 'diffrec data import FILE --name NAME' to import one"),
])
def test_the_cli_words_each_kind_of_hint(hint, words):
    assert word_hint(hint) == words


@pytest.mark.parametrize("fields", [{}, {"options": ("a",), "step": "remove"}, {"options": ("a",), "settings": ("b",)}])
def test_a_hint_names_exactly_one_remedy(fields):
    with pytest.raises(ValueError):
        Hint(**fields)


def test_an_error_keeps_its_message_and_gains_a_hint():
    plain = PluginMissingError("model 'x' comes from plugin 'y'")
    assert plain.hint is None and str(plain) == "model 'x' comes from plugin 'y'"
    hinted = plain.with_hint(Hint(options=("force",)))
    assert type(hinted) is PluginMissingError and str(hinted) == str(plain)
    assert hinted.hint == Hint(options=("force",))


def _run(command, *args):
    probe = typer.Typer()
    probe.command()(handles_errors(command))
    return CliRunner().invoke(probe, list(args))


def test_handles_errors_prints_message_and_hint_on_one_line_and_exits_2():
    def boom() -> None:
        raise DiffrecError("no trial finished in time", hint=Hint(options=("max_trials",), value="5"))

    result = _run(boom)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert ANSI.sub("", result.stderr) == "error: no trial finished in time; use --max-trials 5\n"

    def plain() -> None:
        raise DiffrecError("lr must be positive, got -1 [sic]")

    result = _run(plain)
    assert (result.exit_code, ANSI.sub("", result.stderr)) == (2, "error: lr must be positive, got -1 [sic]\n")


def _error_line(args) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, ANSI.sub("", result.stderr)


def test_data_commands_render_library_hints(home, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user,item,rating,time\nu1,i1,5,10\nu2,i2,4,11\n")
    assert _error_line(["data", "import", log, "--name", "raw"]) == (0, "")
    assert _error_line(["data", "import", log, "--name", "raw"]) == (
        2, f"error: log 'raw' already exists in {home.logs_dir}; use --force to replace it\n")
    folder = tmp_path / "split"
    folder.mkdir()
    for split, rows in (("train", [[0, 0], [1, 1]]), ("valid", [[0, 1]]), ("test", [[1, 0]])):
        np.save(folder / f"{split}_list.npy", np.array(rows, dtype=np.int64))
    assert _error_line(["data", "import-split", folder, "--name", "raw"]) == (
        2, f"error: 'raw' is already a raw log in {home.root}; run 'diffrec data remove raw' to reuse the name\n")
    assert _error_line(["train", "--dataset", "raw"]) == (
        2, "error: 'raw' is a raw log, not a prepared dataset; run 'diffrec data prepare raw --protocol clean "
           "--name raw-clean' to make a dataset of it\n")
    odd = tmp_path / "log.xyz"
    odd.write_text("user,item\n1,2\n")
    assert _error_line(["data", "import", odd, "--name", "x"]) == (
        2, f"error: cannot tell the format of {odd} from its name (formats: csv, tsv, parquet, ml-1m, ml-100k, "
           f"recbole, split-folder); use --format\n")
    semi = tmp_path / "semi.csv"
    semi.write_text("user;item\n1;2\n")
    assert _error_line(["data", "import", semi, "--name", "x"]) == (
        2, f"error: {semi}: found a single column 'user;item'; the file looks separated by ';', not ','; "
           f"use --separator or --format\n")
    assert _error_line(["data", "generate", "--name", "g", "--users", "5", "--items", "5", "--interactions", "20",
                        "--out", tmp_path / "g.json"]) == (
        2, f"error: cannot write a log to {tmp_path / 'g.json'}: the name must end in .csv, .tsv or .parquet; "
           f"use --out {tmp_path / 'g.csv'}\n")
    assert not (tmp_path / "g.json").exists() and not home.log_exists("g")


# Library messages that still name a flag, in modules another change is rewriting: each is to become a
# message plus a Hint (embeddings: Hint(options=("out",)); tuning: Hint(options=("strategy",), value="random")
# and Hint(options=("space",))). Delete an entry when its message is converted.
PENDING: set[str] = set()


def _error_texts(path):
    """The literal text of every ``...Error(...)`` raised in the module at ``path``, by line number."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")).endswith("Error"):
            for arg in node.args:
                for part in ast.walk(arg):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        yield node.lineno, part.value


def test_no_library_message_names_a_command_line_flag():
    """Messages outside cli/ and tui/ say what is wrong; remedies that are flags travel as hints."""
    root = pathlib.Path(diffrec_cli.__file__).parent
    offenders = set()
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in ("cli", "tui"):
            continue
        for line, text in _error_texts(path):
            if re.search(r"--[a-z{]|'diffrec [a-z]", text):
                offenders.add(path.name)
                assert path.name in PENDING, f"{path.relative_to(root)}:{line} names a flag: {text!r}"
    assert offenders <= PENDING
