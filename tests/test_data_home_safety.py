"""Issue 14 §3 in one process: the swap puts the new folder in before the old one goes, leftovers of killed
writers are invisible to readers and tidied by the next writer, the writers' lock makes a second writer wait
or fail, and a result another process stored meanwhile is never replaced unseen."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time

import pytest
from typer.testing import CliRunner

from conftest import make_tiny
from diffrec_cli import atomic
from diffrec_cli.atomic import atomic_directory
from diffrec_cli.cli.app import app
from diffrec_cli.data.guard import sweep, writers_lock
from diffrec_cli.data.operations import import_file
from diffrec_cli.errors import DiffrecError
from test_bad_input import fails_cleanly, snapshot, write_split


def _folder(path, text):
    path.mkdir(parents=True)
    (path / "meta.json").write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_swap_replaces_the_folder_and_leaves_nothing_else(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    target = _folder(tmp_path / "name", "old")
    steps = []
    real_replace = os.replace

    def replace(src, dst):  # record the order of renames: the old folder must still exist when the new lands
        steps.append((os.path.basename(src), os.path.basename(dst), (tmp_path / "name" / "meta.json").exists()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with atomic_directory(target) as tmp:
        (tmp / "meta.json").write_text("new")
        assert tmp.name.startswith(".name.") and tmp.name.endswith(".tmp")
    assert (target / "meta.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name"]
    if exchange:
        assert steps == []  # one renameat2(RENAME_EXCHANGE): no rename that could leave the name empty
    else:  # the old one aside (complete, under a name sweep() knows), then the new one in
        (src1, dst1, _), (src2, dst2, _) = steps
        assert src1 == "name" and dst1.startswith(".name.") and dst1.endswith(".old")
        assert src2.startswith(".name.") and src2.endswith(".tmp") and dst2 == "name"


def test_a_failed_build_leaves_the_old_folder(tmp_path):
    target = _folder(tmp_path / "name", "old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "meta.json").write_text("half")
            raise RuntimeError("disk full")
    assert (target / "meta.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name"]


def test_sweep_removes_temporaries_and_puts_an_orphaned_old_folder_back(tmp_path):
    datasets = tmp_path / "datasets"
    _folder(datasets / "kept", "kept")
    _folder(datasets / ".kept.abcd1234.tmp", "half-built replacement")
    _folder(datasets / ".kept.0badf00d.old", "replaced already")
    _folder(datasets / ".lost.12345678.old", "the only copy")  # killed between the two renames
    _folder(datasets / ".x.y.z.9999aaaa.old", "a dotted name")
    assert sweep(datasets) == ["removed .kept.0badf00d.old", "removed .kept.abcd1234.tmp", "restored lost",
                               "restored x.y.z"]
    assert sorted(p.name for p in datasets.iterdir()) == ["kept", "lost", "x.y.z"]
    assert (datasets / "lost" / "meta.json").read_text() == "the only copy"
    assert sweep(datasets) == []


def test_leftovers_are_invisible_to_readers_and_tidied_by_the_next_writer(tiny_home, tmp_path):
    stray = tiny_home.datasets_dir / ".tiny.q1w2e3r4.tmp"
    stray.mkdir()
    for name in os.listdir(tiny_home.dataset_dir("tiny")):  # a complete copy, meta.json included
        (stray / name).write_bytes((tiny_home.dataset_dir("tiny") / name).read_bytes())
    result = CliRunner().invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    assert [row["name"] for row in json.loads(result.stdout)] == ["tiny"]
    assert tiny_home.names() == ["tiny"]
    # a failing command does not write, so it does not tidy either
    fails_cleanly(["data", "import-split", tmp_path / "none", "--name", "x"], "is not a folder", root=tiny_home.root)
    assert stray.exists()
    result = CliRunner().invoke(app, ["data", "import-split", str(write_split(tmp_path / "s")), "--name", "other"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tiny_home.datasets_dir)) == ["other", "tiny"]


def test_a_second_writer_waits_for_the_lock(tiny_home, tmp_path, monkeypatch):
    waited = []
    tiny_home.on_wait = waited.append
    with open(tiny_home.root / ".lock", "a+") as other:  # another process's lock (a separate open file)
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        other.seek(0)
        other.truncate()
        other.write("4242 12:00:00\n")
        other.flush()
        releaser = threading.Timer(1.3, lambda: fcntl.flock(other.fileno(), fcntl.LOCK_UN))
        releaser.start()
        tick = time.monotonic()
        import_file(tiny_home, write_split(tmp_path / "s"), "other")
        releaser.join()
    assert time.monotonic() - tick >= 1.3
    assert waited == ["pid 4242, since 12:00:00"]
    assert tiny_home.names() == ["other", "tiny"]


def test_a_writer_that_waits_too_long_fails_and_writes_nothing(tiny_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREC_LOCK_TIMEOUT", "0.2")
    folder = write_split(tmp_path / "s")
    with open(tiny_home.root / ".lock", "a+") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        other.seek(0)
        other.truncate()
        other.write("4242 12:00:00\n")
        other.flush()
        line = fails_cleanly(["data", "import-split", folder, "--name", "other"], root=tiny_home.root)
    assert line == (f"error: the data home {tiny_home.root} is being written by another process (pid 4242, since "
                    f"12:00:00); nothing was saved: try again when it has finished")


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with writers_lock(tmp_path):
        with writers_lock(tmp_path, timeout=0):
            pass
        with open(tmp_path / ".lock", "a+") as other:  # still held by this process after the inner exit
            with pytest.raises(BlockingIOError):
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / ".lock", "a+") as other:  # and released after the outer one
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.parametrize("force", [False, True])
def test_a_result_stored_meanwhile_is_not_replaced_unseen(home, force):
    """What a slow import meets when a faster one stored the same name while it worked."""
    if force:
        home.save(make_tiny(seed=3))  # an old dataset both mean to replace
    found = home.claim("tiny", "dataset", force=force)  # the slow one starts
    home.save(make_tiny(seed=1), force=force, expect=found)  # the fast one finishes first
    winner = home.load("tiny").fingerprint()
    with pytest.raises(DiffrecError) as info:
        home.save(make_tiny(seed=2), force=force, expect=found)
    expected = ("dataset 'tiny' was written by another process while this one was working; nothing was saved "
                "(run the command again to replace it)") if force else (
                f"dataset 'tiny' already exists in {home.datasets_dir}")
    assert str(info.value) == expected
    assert home.load("tiny").fingerprint() == winner


def test_the_swap_check_covers_the_demo_first_use(home, monkeypatch):
    """Two first uses of the demo in one process (threads): built once, never an 'already exists' error."""
    import diffrec_cli.data.demo as demo

    calls, real = [], demo.build_demo
    monkeypatch.setattr(demo, "build_demo", lambda: calls.append(1) or real())
    results = []
    threads = [threading.Thread(target=lambda: results.append(home.load("demo").fingerprint())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2 and results[0] == results[1]
    assert sorted(os.listdir(home.datasets_dir)) == ["demo"]
