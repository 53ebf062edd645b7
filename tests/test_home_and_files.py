"""Where the data home is (platformdirs), that ``--help`` names it, and file modes that follow the umask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest
from typer.testing import CliRunner

from diffrec_cli.atomic import atomic_directory, write_json, write_text
from diffrec_cli.cli.app import app
from diffrec_cli.data.store import DataHome


def test_the_default_home_is_the_platforms_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFREC_HOME", raising=False)
    asked = []

    def user_data_dir(appname=None, appauthor=None, **_):
        asked.append((appname, appauthor))
        return str(tmp_path / "platform" / appname)

    monkeypatch.setattr(platformdirs, "user_data_dir", user_data_dir)
    assert DataHome().root == tmp_path / "platform" / "diffrec"
    assert asked == [("diffrec", False)]
    monkeypatch.setenv("DIFFREC_HOME", str(tmp_path / "env"))
    assert DataHome().root == tmp_path / "env"
    assert DataHome(tmp_path / "given").root == tmp_path / "given"


def test_help_names_the_resolved_home(tmp_path):
    home = tmp_path / "my-home"
    env = {**os.environ, "DIFFREC_HOME": str(home), "COLUMNS": "400", "DIFFREC_LOAD_PLUGINS": ""}
    result = subprocess.run([sys.executable, "-m", "diffrec_cli", "data", "list", "--help"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"[default: {home}, from $DIFFREC_HOME or the platform's data folder]" in result.stdout
    assert "--home DIR" in " ".join(result.stdout.split())


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)],
                ids=["022", "077", "002"])
def umask(request):
    mask, file_mode, dir_mode = request.param
    previous = os.umask(mask)
    yield file_mode, dir_mode
    os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_writes_honour_the_umask(umask, tmp_path):
    file_mode, dir_mode = umask
    write_text(tmp_path / "a.txt", "text")
    write_json(tmp_path / "sub" / "b.json", {"x": 1})
    with atomic_directory(tmp_path / "folder") as tmp:
        (tmp / "inside").write_text("x")
    assert (mode(tmp_path / "a.txt"), mode(tmp_path / "sub" / "b.json")) == (file_mode, file_mode)
    assert mode(tmp_path / "folder") == dir_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "folder", "sub"]  # no temporary left


def test_generate_out_and_the_stored_log_honour_the_umask(umask, home, tmp_path):
    file_mode, dir_mode = umask
    out = tmp_path / "log.csv"
    result = CliRunner().invoke(app, ["data", "generate", "--name", "synthetic", "--users", "30", "--items", "20",
                                      "--interactions", "300", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert mode(out) == file_mode
    assert mode(home.log_dir("synthetic")) == dir_mode
