"""Bad input: exit code 2, one line on stderr naming the problem, no traceback, nothing half-written."""

from __future__ import annotations

import hashlib
import os
import re
import shutil

import numpy as np
import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner
import torch

from conftest import FAST_MODEL, FAST_TRAIN, make_tiny
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.guard import LOCK_FILE
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import load_plugins
from diffrec_cli.training.job import train

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def snapshot(root) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) with a content hash for files. The writers' lock file is
    listed but not hashed: it names its last holder (pid and time), which any writing command may change."""
    out: dict[str, str] = {}
    if not os.path.exists(root):
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            path = os.path.join(dirpath, f)
            if f == LOCK_FILE and dirpath == str(root):
                out[LOCK_FILE] = "lock"
                continue
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def fails_cleanly(args, *words, env=None, root=None):
    """Run the CLI, expecting a user error; ``root`` (a folder) must be byte-for-byte unchanged."""
    before = snapshot(root) if root is not None else None
    result = CliRunner(env=env).invoke(app, [str(a) for a in args])
    stderr = ANSI.sub("", result.stderr)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    if root is not None:
        after = snapshot(root)
        assert after == before, sorted(set(after.items()) ^ set(before.items()))
    return lines[0]


def write_split(folder, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train": np.array([[0, 0], [0, 1], [1, 2], [1, 0], [2, 1]], dtype=np.int64),
        "valid": np.array([[0, 2], [1, 1]], dtype=np.int64),
        "test": np.array([[2, 2]], dtype=np.int64),
    }
    arrays.update(overrides)
    for name, arr in arrays.items():
        np.save(folder / f"{name}_list.npy", arr)
    return folder


# ----- data import-split ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", ["missing file", "test_list.npy"]),
        ("random_bytes", ["train_list.npy", "not a readable .npy"]),
        ("truncated_npy", ["train_list.npy", "not a readable .npy"]),
        ("three_columns", ["valid_list.npy", "shape (n, 2)", "(2, 3)"]),
        ("one_dimensional", ["valid_list.npy", "shape (n, 2)"]),
        ("float", ["train_list.npy", "integer ids", "float64"]),
        ("negative", ["test_list.npy", "negative id", "row 1"]),
        ("empty", ["valid_list.npy", "empty"]),
    ],
)
def test_import_rejects_bad_files(home, tmp_path, case, words):
    folder = write_split(tmp_path / "split")
    if case == "missing":
        (folder / "test_list.npy").unlink()
    elif case == "random_bytes":
        (folder / "train_list.npy").write_bytes(np.random.default_rng(0).bytes(300))
    elif case == "truncated_npy":
        np.save(folder / "train_list.npy", np.arange(2000, dtype=np.int64).reshape(1000, 2))
        raw = (folder / "train_list.npy").read_bytes()
        (folder / "train_list.npy").write_bytes(raw[: len(raw) // 2])
    elif case == "three_columns":
        np.save(folder / "valid_list.npy", np.array([[0, 1, 5], [1, 1, 5]], dtype=np.int64))
    elif case == "one_dimensional":
        np.save(folder / "valid_list.npy", np.array([0, 1, 2], dtype=np.int64))
    elif case == "float":
        np.save(folder / "train_list.npy", np.array([[0.0, 1.0], [1.0, 2.0]]))
    elif case == "negative":
        np.save(folder / "test_list.npy", np.array([[2, 2], [-1, 0]], dtype=np.int64))
    elif case == "empty":
        np.save(folder / "valid_list.npy", np.zeros((0, 2), dtype=np.int64))
    home.root.mkdir(parents=True)
    fails_cleanly(["data", "import-split", folder, "--name", "bad"], *words, root=home.root)
    assert home.names() == []
    assert not (home.datasets_dir / "bad").exists()


def test_import_rejects_a_folder_that_is_not_there(home, tmp_path):
    fails_cleanly(["data", "import-split", tmp_path / "nowhere", "--name", "x"], "is not a folder")
    assert not home.root.exists()


@pytest.mark.parametrize("name", ["a/b", "../escape", "x/../../y", ".hidden"])
def test_import_rejects_names_with_path_separators(home, tmp_path, name):
    folder = write_split(tmp_path / "split")
    home.root.mkdir(parents=True)
    fails_cleanly(["data", "import-split", folder, "--name", name], "invalid dataset name", root=tmp_path)
    assert home.names() == []


def test_import_refuses_a_taken_name_without_force(home, tmp_path):
    folder = write_split(tmp_path / "split")
    result = CliRunner().invoke(app, ["data", "import-split", str(folder), "--name", "taken"])
    assert result.exit_code == 0, result.output
    other = write_split(tmp_path / "other", test=np.array([[0, 2], [2, 0]], dtype=np.int64))
    fails_cleanly(["data", "import-split", other, "--name", "taken"], "'taken'", "already exists", "--force",
                  root=home.root)
    assert home.load("taken").test.nnz == 1


def test_unknown_dataset_in_info_and_remove(home):
    fails_cleanly(["data", "info", "nope"], "unknown dataset 'nope'")
    fails_cleanly(["data", "remove", "nope"], "no dataset named 'nope'")


# ----- train ---------------------------------------------------------------------------------------
def _fast_sets():
    out = []
    for key, value in {**FAST_MODEL, **FAST_TRAIN}.items():
        out += ["--set", f"{key}={value}"]
    return out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--dataset", "nope"], ["unknown dataset 'nope'"]),
        (["--dataset", "tiny", "--model", "nope"], ["unknown model 'nope'", "diffrec"]),
        (["--dataset", "tiny", "--set", "bogus=1"], ["unknown setting 'bogus'"]),
        (["--dataset", "tiny", "--set", "epochs=many"], ["epochs", "'many'"]),
        (["--dataset", "tiny", "--set", "novalue"], ["a setting must look like key=value, got 'novalue'"]),
        (["--dataset", "tiny", "--set", "dims=[0]"], ["dims"]),
        (["--dataset", "tiny", "--set", "metric=recall@7"], ["metric"]),
    ],
)
def test_train_rejects_bad_settings_before_creating_a_run(tiny_home, extra, words):
    fails_cleanly(["train", "--device", "cpu", "--quiet", *_fast_sets(), *extra], *words, root=tiny_home.root)
    assert not tiny_home.runs_dir.exists()


# ----- eval / recommend with a trained run --------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-home")
    home = DataHome(root)
    home.save(make_tiny())
    settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN}, dataset="tiny", device="cpu")
    outcome = train(settings, load_plugins(entry_points=False).registry, home=home)
    return home, outcome.run.path, {"DIFFREC_HOME": str(root), "DIFFREC_LOAD_PLUGINS": ""}


@pytest.fixture
def run_copy(trained, tmp_path):
    _, run, _ = trained
    copy = tmp_path / "run-copy"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("damage, words", [
    ("truncate", ["model.safetensors", "not a valid safetensors file"]),
    ("random", ["model.safetensors", "not a valid safetensors file"]),
    ("empty", ["model.safetensors", "not a valid safetensors file"]),
    ("wrong_tensors", ["does not match model 'diffrec'"]),
    ("missing_weights", ["missing weights file"]),
    ("bad_json", ["checkpoint.json", "not a diffrec checkpoint"]),
])
@pytest.mark.parametrize("command", ["eval", "recommend"])
def test_damaged_checkpoint(trained, run_copy, damage, words, command):
    home, _, env = trained
    weights = run_copy / "checkpoint" / "model.safetensors"
    if damage == "truncate":
        raw = weights.read_bytes()
        weights.write_bytes(raw[: len(raw) // 2])
    elif damage == "random":
        weights.write_bytes(np.random.default_rng(1).bytes(4096))
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "wrong_tensors":
        save_file({"denoiser.layers.0.weight": torch.zeros(3, 3)}, str(weights))
    elif damage == "missing_weights":
        weights.unlink()
    elif damage == "bad_json":
        (run_copy / "checkpoint" / "checkpoint.json").write_text("{not json")
    args = ["eval", run_copy] if command == "eval" else ["recommend", run_copy, "--user", "u1"]
    fails_cleanly(args, *words, env=env, root=home.root)


def test_unknown_run(trained):
    home, _, env = trained
    fails_cleanly(["eval", "no-such-run"], "no run or checkpoint 'no-such-run'", env=env, root=home.root)


def test_recommend_unknown_user_writes_nothing(trained, tmp_path):
    home, run, env = trained
    out = tmp_path / "recs.csv"
    fails_cleanly(["recommend", run.name, "--user", "u1", "--user", "nobody", "--out", out],
                  "unknown user id 'nobody'", env=env, root=home.root)
    assert list(tmp_path.iterdir()) == []
    users = tmp_path / "users.txt"
    users.write_text("u1\nghost\n")
    fails_cleanly(["recommend", run.name, "--users-file", users, "--out", out], "unknown user id 'ghost'",
                  env=env, root=home.root)
    assert [p.name for p in tmp_path.iterdir()] == ["users.txt"]


@pytest.mark.parametrize("k", ["0", "-3"])
def test_recommend_non_positive_k(trained, k):
    home, run, env = trained
    fails_cleanly(["recommend", run.name, "--user", "u1", "--top", k], "-k must be positive", f"got {k}",
                  env=env, root=home.root)


def test_recommend_other_bad_arguments(trained, tmp_path):
    home, run, env = trained
    fails_cleanly(["recommend", run.name], "--user", env=env, root=home.root)
    fails_cleanly(["recommend", run.name, "--user", "u1", "--out", tmp_path / "x.json"], "--out", ".csv",
                  env=env, root=home.root)
    fails_cleanly(["recommend", run.name, "--users-file", tmp_path / "none.txt"], "not found", env=env,
                  root=home.root)
    bad_csv = tmp_path / "users.csv"
    bad_csv.write_text("id\nu1\n")
    fails_cleanly(["recommend", run.name, "--users-file", bad_csv], "no 'user' column", env=env, root=home.root)
    fails_cleanly(["eval", run.name, "--split", "train"], "--split", env=env, root=home.root)
