"""Faults, injected for real: processes killed with SIGKILL at chosen instants, and writers racing.

Data home (issue 14 §3): each command runs in a child process, which ``$DIFFREC_FAULT`` makes kill itself
(SIGKILL) at an exact instant of ``data import --force``. Whatever the instant, the name must hold the old
log or the new one, complete; readers never see the leftovers and the next writer tidies them. Racing
writers are lined up behind a lock the test holds, then let go together.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.store import DataHome

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The diffrec command without plugin loading (the data commands need none): a child starts in about a second.
CHILD = "import sys; from diffrec_cli.cli.app import app; sys.argv[0] = 'diffrec'; app()"
NO_EXCHANGE = "import diffrec_cli.atomic as a; a.exchange = lambda x, y: False; " + CHILD


def start(args: list, *, env: dict[str, str] | None = None, code: str = CHILD) -> subprocess.Popen:
    """``diffrec ARGS`` in a child process (stdout and stderr kept as text)."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200", **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    """(exit status or minus the killing signal, stdout, stderr) of a child."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, ANSI.sub("", out), ANSI.sub("", err)


@contextmanager
def held_lock(root: Path):
    """Hold the data home's writers' lock as another process would."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()} 00:00:00\n")
        handle.flush()
        yield


def log_source(home: DataHome, name: str) -> str:
    """Which file the stored log ``name`` came from; loading it proves it complete."""
    log = home.load_log(name)
    assert log.frame.height == log.meta["rows"]
    return Path(log.meta["source"]["path"]).name


@pytest.fixture
def two_logs(home, tmp_path):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_text("user,item,rating,time\n" + "".join(f"{u},{i},5,{u * 10 + i}\n" for u in range(5) for i in range(4)))
    new.write_text("user,item,rating,time\n" + "".join(f"{u},{i},4,{u * 10 + i}\n" for u in range(7) for i in range(3)))
    result = CliRunner().invoke(app, ["data", "import", str(old), "--name", "x"])
    assert result.exit_code == 0, result.output
    return home, old, new


@pytest.mark.parametrize("point, code, holds", [
    ("before-swap", CHILD, "old.csv"),  # the new folder complete under its temporary name, not yet swapped
    ("after-swap", CHILD, "new.csv"),  # exchanged: the old contents under the temporary name, not yet removed
    ("between-renames", NO_EXCHANGE, "old.csv"),  # no renameat2: the old one aside, the new one not yet in
])
def test_killed_at_the_swap_of_import_force(two_logs, point, code, holds):
    home, old, new = two_logs
    killed = start(["data", "import", new, "--name", "x", "--force"], env={"DIFFREC_FAULT": point}, code=code)
    assert finish(killed)[0] == -signal.SIGKILL
    leftovers = sorted(p.name.rsplit(".", 1)[1] for p in home.logs_dir.iterdir() if p.name.startswith(".x."))
    assert leftovers == (["old", "tmp"] if point == "between-renames" else ["tmp"])
    # readers: the listing never fails nor shows the leftover
    result = CliRunner().invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    if point == "between-renames":  # until the next writer puts the old one back, the name is empty
        assert home.log_names() == []
    else:
        assert home.log_names() == ["x"] and log_source(home, "x") == holds
    # the next command that writes the home tidies up (and restores)
    result = CliRunner().invoke(app, ["data", "import", str(old), "--name", "y"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(home.logs_dir)) == ["x", "y"]
    assert log_source(home, "x") == holds


@pytest.mark.parametrize("force", [False, True])
def test_two_imports_of_one_name_never_replace_each_other_unseen(two_logs, tmp_path, force):
    home, old, new = two_logs
    other = tmp_path / "other.csv"
    other.write_text(new.read_text().replace(",4,", ",3,"))
    if not force:
        CliRunner().invoke(app, ["data", "remove", "x"])
    flags = ["--force"] if force else []
    with held_lock(home.root):  # both read their file, then queue behind this lock until both say so
        procs = [start(["data", "import", f, "--name", "x", *flags]) for f in (new, other)]
        said = [p.stderr.readline().strip() for p in procs]
    assert said == [f"waiting for another process writing the data home (pid {os.getpid()}, since 00:00:00)"] * 2
    results = [finish(p) for p in procs]
    codes = [r[0] for r in results]
    assert sorted(codes) == [0, 2], results
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    lines = results[loser][2].strip().splitlines()
    assert lines[-1] == ("error: log 'x' was written by another process while this one was working; nothing was "
                         "saved (run the command again to replace it)" if force else
                         f"error: log 'x' already exists in {home.logs_dir}; use --force to replace it")
    assert log_source(home, "x") == (new, other)[winner].name
    assert sorted(os.listdir(home.logs_dir)) == ["x"]


def test_the_demo_first_use_race(home):
    """Two `diffrec data demo` (what the first `diffrec train` does): one builds, the other finds it built."""
    with held_lock(home.root):
        procs = [start(["data", "demo"]) for _ in range(2)]
        said = [p.stderr.readline().strip() for p in procs]
    assert said == [f"waiting for another process writing the data home (pid {os.getpid()}, since 00:00:00)"] * 2
    results = [finish(p) for p in procs]
    assert [r[0] for r in results] == [0, 0], results
    said = sorted(r[1].splitlines()[0].strip() for r in results)
    assert said[0] == f"dataset 'demo' already exists in {home.datasets_dir}"  # the one that waited
    assert said[1] == "dataset demo"  # the one that built it: the info table's title
    assert home.names() == ["demo"] and sorted(os.listdir(home.datasets_dir)) == ["demo"]
    demo = home.load("demo")
    assert demo.fingerprint() == home.meta("demo")["fingerprint"]  # complete: the splits match the description
    assert (demo.n_users, demo.n_items, demo.train.nnz) == (1069, 900, 20864)  # the deterministic demo
