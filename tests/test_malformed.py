"""Issue 14 §4, one case each: every malformed input is exactly one ``error:`` line and exit code 2, and the
data home is byte-for-byte unchanged (no run folder either). The lines are compared whole."""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import FAST_MODEL, FAST_TRAIN, make_tiny
from diffrec_cli import memory
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import load_plugins
from diffrec_cli.training.job import train
from test_bad_input import fails_cleanly, snapshot, write_split

GOOD = "user,item,rating,time\n1,2,5,1000\n"
OUTSIDE = "lies outside the years 1 to 9999"


def csv(tmp_path, text: str | bytes, name: str = "log.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def parquet(tmp_path, frame: pl.DataFrame, name: str = "log.parquet"):
    path = tmp_path / name
    frame.write_parquet(path)
    return path


@pytest.fixture
def used_home(home, tmp_path):
    """A data home that already holds a log, so "unchanged" means more than "still absent"."""
    result = CliRunner().invoke(app, ["data", "import", str(csv(tmp_path, GOOD * 1, "first.csv")), "--name", "kept"])
    assert result.exit_code == 0, result.output
    return home


# ----- data import: timestamps, separators, ids, ratings, headers ----------------------------------------
@pytest.mark.parametrize("value, shown", [
    ("-62135596801", "'-62135596801'"),  # one second before 0001-01-01
    ("253402300800", "'253402300800'"),  # one second after 9999-12-31 23:59:59
    ("1e20", "'1e20'"),
    ("1e300", "'1e300'"),
    ("1700000000000", "'1700000000000'"),  # milliseconds read as seconds: the year 55840
])
def test_timestamps_outside_the_calendar(used_home, tmp_path, value, shown):
    path = csv(tmp_path, GOOD + f"2,3,4,{value}\n")
    line = fails_cleanly(["data", "import", path, "--name", "t"], root=used_home.root)
    assert line == (f"error: {path}: line 3: timestamp {shown} in column 'time' {OUTSIDE} "
                    f"(numbers are read as unix seconds)")


def test_parquet_float_timestamp_and_a_date_before_year_one(used_home, tmp_path):
    path = parquet(tmp_path, pl.DataFrame({"user": [1, 2], "item": [2, 3], "time": [1.0, 1e30]}))
    line = fails_cleanly(["data", "import", path, "--name", "t"], root=used_home.root)
    assert line == f"error: {path}: row 2: timestamp 1e+30 in column 'time' {OUTSIDE} (numbers are read as unix seconds)"
    path = csv(tmp_path, "user,item,time\n1,2,2020-01-01\n2,3,0000-01-01\n", "dates.csv")
    line = fails_cleanly(["data", "import", path, "--name", "t"], root=used_home.root)
    assert line == f"error: {path}: line 3: timestamp '0000-01-01' in column 'time' {OUTSIDE}"


@pytest.mark.parametrize("separator, message", [
    ("::", "the separator must be one character, got '::' (MovieLens ratings.dat); use --format ml-1m to read a "
           "MovieLens ratings.dat"),
    ("é", "the separator must be one ASCII character other than a quote or a line break, got 'é'"),
    ("", "the separator must be one ASCII character other than a quote or a line break, got ''"),
    (";;", "the separator must be one ASCII character other than a quote or a line break, got ';;'"),
    ('"', "the separator must be one ASCII character other than a quote or a line break, got '\"'"),
])
def test_separators_that_cannot_separate(used_home, tmp_path, separator, message):
    path = csv(tmp_path, GOOD)
    line = fails_cleanly(["data", "import", path, "--name", "s", "--separator", separator], root=used_home.root)
    assert line == f"error: {message}"


def test_a_separator_for_a_format_without_one(used_home, tmp_path):
    path = parquet(tmp_path, pl.DataFrame({"user": [1], "item": [2]}))
    line = fails_cleanly(["data", "import", path, "--name", "s", "--separator", ";"], root=used_home.root)
    assert line == "error: a separator applies to csv and tsv files, not to the parquet format"


@pytest.mark.parametrize("user, message", [
    ([[1], [2]], "column 'user' (user ids) has type List(Int64); ids must be whole numbers or text"),
    ([{"a": 1}, {"a": 2}], "column 'user' (user ids) has type Struct({'a': Int64}); ids must be whole numbers "
                           "or text"),
    ([1.0, float("nan")], "row 2: user id nan in column 'user' is not a usable id (ids must be finite and below "
                          "2**63)"),
    ([1.0, 1e30], "row 2: user id 1e+30 in column 'user' is not a usable id (ids must be finite and below 2**63)"),
    ([1.0, float("-inf")], "row 2: user id -inf in column 'user' is not a usable id (ids must be finite and below "
                           "2**63)"),
    (["a", "  "], "row 2: user id '  ' in column 'user' is blank"),
    (["a", ""], "row 2: user id '' in column 'user' is blank"),
    (["a\x00b", "c"], "row 1: user id 'a\\x00b' in column 'user' holds a control character"),
    ([True, False], "column 'user' (user ids) has type Boolean; ids must be whole numbers or text"),
])
def test_parquet_ids_that_are_not_ids(used_home, tmp_path, user, message):
    path = parquet(tmp_path, pl.DataFrame({"user": user, "item": [1, 2]}))
    line = fails_cleanly(["data", "import", path, "--name", "x"], root=used_home.root)
    assert line == f"error: {path}: {message}"


@pytest.mark.parametrize("text, message", [
    ("user,item,user\n1,2,3\n", "the header names column 'user' twice"),
    ("user,item\n  ,2\n1,3\n", "line 2: user id '  ' in column 'user' is blank"),
    (b"user,item\na\x00b,2\n1,3\n", "line 2: user id 'a\\x00b' in column 'user' holds a control character"),
    ("user,item\n1,2\n1,\t\n", "line 3: item id '\\t' in column 'item' is blank"),
])
def test_csv_headers_and_ids(used_home, tmp_path, text, message):
    path = csv(tmp_path, text)
    line = fails_cleanly(["data", "import", path, "--name", "x"], root=used_home.root)
    assert line == f"error: {path}: {message}"


def test_booleans_are_not_ratings(used_home, tmp_path):
    path = parquet(tmp_path, pl.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [True, False]}))
    line = fails_cleanly(["data", "import", path, "--name", "x"], root=used_home.root)
    assert line == (f"error: {path}: column 'rating' holds true/false values, not ratings (name a numeric "
                    f"rating column, or none)")
    path = parquet(tmp_path, pl.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [1.0, 1e300]}), "huge.parquet")
    line = fails_cleanly(["data", "import", path, "--name", "x"], root=used_home.root)
    assert line == (f"error: {path}: row 2: rating 1e+300 in column 'rating' is too large (ratings are stored as "
                    f"32-bit floats)")


# ----- data import-split ---------------------------------------------------------------------------------
def test_split_ids_beyond_int64_and_far_beyond_the_rows(used_home, tmp_path):
    folder = write_split(tmp_path / "u64", train=np.array([[0, 0], [2**63, 1], [1, 2]], dtype=np.uint64))
    line = fails_cleanly(["data", "import-split", folder, "--name", "s"], root=used_home.root)
    assert line == (f"error: {folder / 'train_list.npy'}: id 9223372036854775808 in row 1 is beyond 2147483646 "
                    f"(ids of this format are dense: 0 to the number of users or items - 1)")


def test_split_ids_that_would_not_fit_in_memory(used_home, tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**30)
    folder = write_split(tmp_path / "wide", test=np.array([[2**27 - 1, 2]], dtype=np.int64))
    line = fails_cleanly(["data", "import-split", folder, "--name", "s"], root=used_home.root)
    # 2**27 users: 8 bytes x 3 splits x 4 copies each = 12 GiB of row pointers, plus 3 items and 8 rows
    assert line == (f"error: the split folder {folder} (134,217,728 users, 3 items by its largest ids) would need "
                    f"about 12.0 GiB of memory, but only 1.0 GiB is free")


@pytest.mark.parametrize("emb, message", [
    (np.array([["a", "b"]] * 3), "expected real numbers, got dtype <U1"),
    (np.array([[1 + 1j, 1.0]] * 3), "expected real numbers, got dtype complex128"),
    (np.array([[True, False]] * 3), "expected real numbers, got dtype bool"),
    (np.array([[0.5, 1.0], [np.nan, 1.0], [0.0, 0.0]]), "row 1 holds a value that is not a finite float32 number"),
    (np.array([[0.5, 1e300]] * 3), "row 0 holds a value that is not a finite float32 number"),
    (np.zeros((2, 4)), "expected shape (3, d), got (2, 4)"),
])
def test_item_embeddings_of_the_wrong_kind(used_home, tmp_path, emb, message):
    folder = write_split(tmp_path / "split")
    np.save(folder / "item_emb.npy", emb)
    line = fails_cleanly(["data", "import-split", folder, "--name", "s"], root=used_home.root)
    assert line == f"error: {folder / 'item_emb.npy'}: {message}"


def test_pickled_item_embeddings_are_never_loaded(used_home, tmp_path):
    folder = write_split(tmp_path / "split")
    np.save(folder / "item_emb.npy", np.array([[1, 2]] * 3, dtype=object), allow_pickle=True)
    line = fails_cleanly(["data", "import-split", folder, "--name", "s"], root=used_home.root)
    assert line == (f"error: {folder / 'item_emb.npy'} is not a readable .npy array (it holds Python objects, "
                    f"which are never unpickled)")


# ----- data prepare --------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["noisy-random", "noisy-natural"])
def test_prepare_with_a_negative_seed(used_home, protocol):
    line = fails_cleanly(["data", "prepare", "kept", "--protocol", protocol, "--name", "p", "--set", "seed=-1"],
                         root=used_home.root)
    assert line == f"error: recipe {protocol}: seed must be a whole number from 0 to 2**63 - 1, got -1"


# ----- dataset files edited or truncated ----------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("malformed-home")
    home = DataHome(root)
    home.save(make_tiny())
    settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN, "epochs": "1"}, dataset="tiny", device="cpu")
    outcome = train(settings, load_plugins(entry_points=False).registry, home=home)
    return root, outcome.run.id


@pytest.fixture
def trained_home(trained, tmp_path, monkeypatch):
    """A copy of a home with the tiny dataset and one trained run."""
    root, run_id = trained
    copy = tmp_path / "home"
    shutil.copytree(root, copy)
    monkeypatch.setenv("DIFFREC_HOME", str(copy))
    monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", "")
    return DataHome(copy), run_id


def _damage(folder, case):
    if case == "pickled item_emb":
        np.save(folder / "item_emb.npy", np.array([[1, 2]] * 30, dtype=object), allow_pickle=True)
        return f"{folder / 'item_emb.npy'} is not a readable .npy array (it holds Python objects, which are never unpickled)"
    if case == "garbage item_emb":
        (folder / "item_emb.npy").write_bytes(b"\x80\x04garbage that is not an array")
        return (f"{folder / 'item_emb.npy'} is not a readable .npy array (it is not in .npy format, and pickled "
                f"data is never loaded)")
    if case == "NaN item_emb":
        np.save(folder / "item_emb.npy", np.full((30, 2), np.nan, dtype=np.float32))
        return "dataset 'tiny': item_emb.npy: row 0 holds a value that is not a finite float32 number"
    raw = (folder / "splits.npz").read_bytes()
    if case == "truncated splits.npz":
        (folder / "splits.npz").write_bytes(raw[: len(raw) // 2])
        return f"dataset 'tiny' in {folder} is damaged: File is not a zip file"
    with np.load(folder / "splits.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["valid_indices"] = arrays["valid_indices"] + 1000  # items that do not exist
    np.savez(folder / "splits.npz", **arrays)
    return "dataset 'tiny': split valid in splits.npz is damaged (item indices should lie in 0..29)"


@pytest.mark.parametrize("case", ["pickled item_emb", "garbage item_emb", "NaN item_emb", "truncated splits.npz",
                                  "indices out of range"])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_damaged_dataset_files(trained_home, case, command):
    home, run_id = trained_home
    message = _damage(home.dataset_dir("tiny"), case)
    args = ["train", "--dataset", "tiny", "--device", "cpu", "--quiet"] if command == "train" else ["eval", run_id]
    line = fails_cleanly(args, root=home.root)
    assert line == f"error: {message}"


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.update(counts="x"), 'counts should be an object of counts, found "x"'),
    (lambda m: m.pop("counts"), "counts should be an object of counts, found null"),
    (lambda m: m["counts"].update(users=-1), "counts.users should be a count (a whole number >= 0), found -1"),
    (lambda m: m["counts"].update(density=None), "counts.density should be a number, found null"),
    (lambda m: m.update(name=5), "name should be text, found 5"),
    (lambda m: m.update(ranges={"train": {"time_range": [0, 1e20]}}),
     "ranges.train.time_range [0, 1e+20] lies outside the years 1 to 9999"),
    (lambda m: m.update(ranges={"train": {"rating_range": "1-5"}}),
     'ranges.train.rating_range should be [lowest, highest] numbers, found "1-5"'),
])
def test_edited_dataset_description(trained_home, edit, problem):
    home, _ = trained_home
    path = home.dataset_dir("tiny") / "meta.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    expected = (f"error: dataset 'tiny': {path} is damaged: {problem}; run 'diffrec data remove tiny' to drop it")
    assert fails_cleanly(["data", "info", "tiny"], root=home.root) == expected
    assert fails_cleanly(["train", "--dataset", "tiny", "--device", "cpu"], root=home.root) == expected
    # the listing skips it with a warning instead of failing as a whole
    result = CliRunner().invoke(app, ["data", "list", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert result.stderr.strip() == expected.replace("error: ", "warning: skipped ").rsplit(";", 1)[0]


def test_a_description_that_is_not_an_object(trained_home):
    home, _ = trained_home
    path = home.dataset_dir("tiny") / "meta.json"
    path.write_text("[1]")
    assert fails_cleanly(["data", "info", "tiny"], root=home.root) == (
        f"error: dataset 'tiny': {path} is damaged: expected a JSON object, found list; run 'diffrec data remove "
        f"tiny' to drop it")


# ----- checkpoint.json edited (training/checkpoint.py checks it) -------------------------------------------
CHECKPOINT_CASES = [
    ("model a string", lambda c: c.update(model="diffrec"), "model should be an object, found str"),
    ("reweighting a string", lambda c: c.update(reweighting="none"), "reweighting should be an object, found str"),
    ("n_users missing", lambda c: c["dataset"].pop("n_users"),
     "dataset.n_users and dataset.n_items should be positive integers, found [None, 30]"),
    ("negative n_items", lambda c: c["dataset"].update(n_items=-3),
     "dataset.n_users and dataset.n_items should be positive integers, found [40, -3]"),
]


@pytest.mark.parametrize("label, edit, problem", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_edited_checkpoint_description(trained_home, label, edit, problem):
    home, run_id = trained_home
    path = home.runs_dir / run_id / "checkpoint" / "checkpoint.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    line = fails_cleanly(["eval", run_id], root=home.root)
    assert line == f"error: {path} is not a diffrec checkpoint description ({problem})"


def test_checkpoint_without_components(trained_home):
    home, run_id = trained_home
    path = home.runs_dir / run_id / "checkpoint" / "checkpoint.json"
    raw = json.loads(path.read_text())
    raw["model"].pop("components")
    path.write_text(json.dumps(raw))
    assert fails_cleanly(["eval", run_id], root=home.root) == (
        "error: the recorded model 'diffrec' has no component 'schedule'")


# Values that only a rebuild of the recorded model can judge: each is one error line, before anything big is
# allocated (a size that would need more memory than there is is refused with the estimate).
RECORDED_MODEL = [
    ("train.ks ['a']", lambda c: c["train"].update(ks=["a"])),
    ("train.ks [0]", lambda c: c["train"].update(ks=[0])),
    ("train.ks 'abc'", lambda c: c["train"].update(ks="abc")),
    ("train.ks [null]", lambda c: c["train"].update(ks=[None])),
    ("emb_size -1", lambda c: c["model"]["config"].update(emb_size=-1)),
    ("emb_size 0", lambda c: c["model"]["config"].update(emb_size=0)),
    ("dims [10**12]", lambda c: c["model"]["config"].update(dims=[10**12])),
    ("history 10**12", lambda c: c["model"]["config"].update(history=10**12)),
    ("n_items 10**12", lambda c: c["dataset"].update(n_items=10**12)),
    ("steps 10**9", lambda c: c["model"]["components"]["schedule"]["config"].update(steps=10**9)),
]


@pytest.mark.parametrize("label, edit", RECORDED_MODEL, ids=[u[0] for u in RECORDED_MODEL])
def test_recorded_model_values(trained_home, label, edit):
    home, run_id = trained_home
    path = home.runs_dir / run_id / "checkpoint" / "checkpoint.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    line = fails_cleanly(["eval", run_id], root=home.root)
    assert line.startswith("error: ")
    if "10**" in label:
        assert "memory" in line, line


# ----- recommend --users-file, data remove of a link ------------------------------------------------------
def test_users_file_that_is_not_utf8(trained_home, tmp_path):
    home, run_id = trained_home
    users = tmp_path / "users.txt"
    users.write_bytes(b"u1\nu2\n\xff\xfe\n")
    line = fails_cleanly(["recommend", run_id, "--users-file", users], root=home.root)
    assert line == f"error: users file {users}: line 3 is not UTF-8 text"


def test_removing_a_linked_dataset_removes_the_link_only(trained_home, tmp_path):
    home, _ = trained_home
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(home.dataset_dir("tiny"), elsewhere)
    before = snapshot(elsewhere)
    os.symlink(elsewhere, home.datasets_dir / "linked")
    assert home.names() == ["linked", "tiny"]
    result = CliRunner().invoke(app, ["data", "remove", "linked"])
    assert result.exit_code == 0, result.output
    assert result.stdout.replace("\n", "") == (f"removed dataset 'linked': the link only; the folder it pointed "
                                               f"to, {elsewhere}, was left alone")
    assert not os.path.lexists(home.datasets_dir / "linked") and home.names() == ["tiny"]
    assert snapshot(elsewhere) == before


# ----- training settings: all checked before a run folder exists ----------------------------------------
def _train_args(*extra):
    args = ["train", "--dataset", "tiny", "--device", "cpu", "--quiet"]
    for key, value in FAST_MODEL.items():
        args += ["--set", f"{key}={value}"]
    return [*args, *extra]


@pytest.mark.parametrize("setting, message", [
    ("emb_size=-1", "emb_size must be a positive integer, got -1"),
    ('ks=["a"]', "setting ks: cannot read 'a' as int"),
    ("ks=[0]", "ks must be positive, got [0]"),
    ("seed=-1", "seed must be a whole number from 0 to 4294967295, got -1"),
    ("seed=1e30", "setting seed: cannot read '1e30' as int"),
    ("seed=18446744073709551616", "seed must be a whole number from 0 to 4294967295, got 18446744073709551616"),
    ("history=0", "history must be at least 1, got 0"),
    ("epochs=1.5", "setting epochs: cannot read '1.5' as int"),
    ("epochs=1e400", "setting epochs: cannot read '1e400' as int"),
    ("batch_size=1.5", "setting batch_size: cannot read '1.5' as int"),
    ("eval_batch_size=1e9", "setting eval_batch_size: cannot read '1e9' as int"),
    ("lr=nan", "setting lr: cannot read 'nan' as float"),
    ("lr=inf", "setting lr: cannot read 'inf' as float"),
    ("ks=[[10],20]", "setting ks: expected a whole number, got [10]"),
])
def test_bad_settings_leave_no_run_folder(tiny_home, setting, message):
    line = fails_cleanly(_train_args("--set", setting), root=tiny_home.root)
    assert line == f"error: {message}"
    assert not tiny_home.runs_dir.exists()


@pytest.mark.parametrize("toml, message", [
    ("batch_size = 1e308", "setting batch_size: expected a whole number, got 1e+308"),
    ("[train]\nepochs = 1.5", "setting epochs: expected a whole number, got 1.5"),
    ("epochs = true", "setting epochs: expected a whole number, got true"),
    ("seed = 1e30", "setting seed: expected a whole number, got 1e+30"),
    ("metric = 5", "setting metric: expected text, got 5"),
    ("ks = [[10], 20]", "setting ks: expected a whole number, got [10]"),
    ("ks = 5", "setting ks: expected a list like 10,20,50,100, got 5"),
    ("[model]\ndims = 5", "setting dims: expected a list like 200,600, got 5"),
    ("train = 5", "config file {path}: train should be a [train] table of settings, got 5"),
    ("model = [1, 2]", "config file {path}: model should be a model name or a [model] table of settings, got [1, 2]"),
    ("[trian]\nepochs = 3", "config file {path}: unknown table [trian] (settings go at the top level or in [train], "
                            "[model] and [tracking])"),
])
def test_bad_config_files(tiny_home, tmp_path, toml, message):
    path = tmp_path / "config.toml"
    path.write_text(toml + "\n")
    line = fails_cleanly(["train", "--dataset", "tiny", "--device", "cpu", "--config", path], root=tiny_home.root)
    assert line == "error: " + message.format(path=path)
    assert not tiny_home.runs_dir.exists()


def test_config_naming_a_folder(tiny_home, tmp_path):
    line = fails_cleanly(["train", "--dataset", "tiny", "--config", tmp_path], root=tiny_home.root)
    assert line == f"error: config file {tmp_path} is a folder, not a TOML file"


GIB = 2**30


@pytest.mark.parametrize("setting, message", [
    # 10**8 steps x 8 bytes x (2 x 16 coefficients + 10 history + 1) = 34.4e9 bytes
    ("steps=100000000", "diffrec with these diffusion steps would need about 32.0 GiB of memory, but only 8.0 GiB "
                        "is free; use --set steps=VALUE to need less memory"),
    # the denoiser (30 items + 4) -> 10**7 -> 30: 650,000,050 float32 parameters kept 6 times = 15.6e9 bytes;
    # a batch of 40 users: 40 x 4 bytes x (6 x 30 items + 3 x 10,000,034 layer widths) = 4.8e9; evaluation of
    # 40 users: 40 x 4 x (6 x 30 + 10,000,034) = 1.6e9; 22.0e9 bytes in all
    ("dims=[10000000]", "training diffrec on tiny (model, a batch of 40 users, evaluation) would need about "
                        "20.5 GiB of memory, but only 8.0 GiB is free; use --set dims=VALUE or --set "
                        "emb_size=VALUE to need less memory"),
])
def test_sizes_that_cannot_fit_are_refused_with_the_estimate(tiny_home, monkeypatch, setting, message):
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * GIB)
    line = fails_cleanly(_train_args("--set", setting), root=tiny_home.root)
    assert line == f"error: {message}"
    assert not tiny_home.runs_dir.exists()


def test_diffusion_steps_beyond_the_free_memory_fail_fast(tiny_home):
    """No stand-in for the free memory here: this machine's own, and twice as many steps as would fit."""
    free = memory.available_bytes()
    steps = 2 * free // (8 * 43) + 1  # 8 bytes x (2 x 16 coefficients + 10 history + 1) per step
    tick = time.monotonic()
    line = fails_cleanly(_train_args("--set", f"steps={steps}"), root=tiny_home.root)
    assert time.monotonic() - tick < 30  # refused from the estimate: nothing of that size was allocated
    assert re.fullmatch(r"error: diffrec with these diffusion steps would need about [\d,.]+ [GT]iB of memory, but only "
                        r"[\d,.]+ [GMT]iB is free; use --set steps=VALUE to need less memory", line), line
    assert not tiny_home.runs_dir.exists()


def test_on_a_gpu_the_working_copies_are_checked_against_its_free_memory(monkeypatch):
    """The CUDA branch of the estimate, without a GPU: torch's free-memory query stands in."""
    import torch

    from diffrec_cli.errors import DiffrecError
    from diffrec_cli.training.budget import check_training_fits

    monkeypatch.setattr(memory, "available_bytes", lambda: 64 * GIB)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (GIB, 80 * GIB))
    settings = resolve_settings({}, {**FAST_MODEL, "dims": "[1000000]"}, dataset="tiny", device="cpu")
    registry = load_plugins(entry_points=False).registry
    with pytest.raises(DiffrecError) as info:
        check_training_fits(registry, settings.train, settings.model, make_tiny(), torch.device("cuda"))
    # 65,000,050 float32 parameters x 4 copies on the GPU (weights, gradients, 2 moments) = 1.04e9 bytes, a batch
    # of 40 users 40 x 4 x (6 x 30 + 3 x 1,000,034) = 0.48e9, evaluation 40 x 4 x (6 x 30 + 1,000,034) = 0.16e9
    assert str(info.value) == ("training diffrec on tiny (model, a batch of 40 users, evaluation) would need about "
                               "1.6 GiB of GPU memory, but only 1.0 GiB is free")
    assert info.value.hint.settings == ("dims", "emb_size")
