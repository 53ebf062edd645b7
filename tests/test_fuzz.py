"""Property-based fuzzing (hypothesis) of every input a user or an edited file can give (issue 14 §4).

Generated CSV/TSV and Parquet logs, split folders of ``.npy`` arrays, TOML config files, ``--set`` values,
edited ``checkpoint.json`` files and edited dataset descriptions and arrays. The property, for each: the
command exits 0, or it exits 2 with exactly one ``error:`` line on stderr and nothing on stdout, and then the
data home is byte-for-byte what it was. Never a traceback, never another exit code, never a half-written home.

Each test starts every example from a fresh copy of a small home, runs the CLI in-process (CliRunner) and
derandomises hypothesis, so CI sees the same few hundred cases every time.
"""

from __future__ import annotations

import json
import math
import shutil
import string
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import FAST_MODEL, make_tiny
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.store import DataHome
from diffrec_cli.plugins import load_plugins
from diffrec_cli.training.job import train
from test_bad_input import ANSI, snapshot

def fuzz(examples: int) -> settings:
    # no shrinking: a failure is reported as first found, and CI stays within its minute
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    phases=(Phase.explicit, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


OUTCOMES: dict[str, dict[int, int]] = {}  # test -> exit code -> count (printed at the end of the module)


def run_checked(label: str, home: Path, args: list) -> int:
    """The CLI with ``args``; asserts the property and returns the exit code."""
    before = snapshot(home)
    result = CliRunner(env={"DIFFREC_HOME": str(home), "DIFFREC_LOAD_PLUGINS": ""}).invoke(
        app, [str(a) for a in args])
    stderr = ANSI.sub("", result.stderr)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"{args}: {result.exception!r}"
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output)
    OUTCOMES.setdefault(label, {}).setdefault(result.exit_code, 0)
    OUTCOMES[label][result.exit_code] += 1
    if result.exit_code == 2:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, stderr)
        assert result.stdout == "", (args, result.stdout)
        assert snapshot(home) == before, (args, "the home changed on a failure")
    return result.exit_code


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A home with a raw log, the tiny dataset and one trained run (one epoch)."""
    root = tmp_path_factory.mktemp("fuzz-template")
    home = DataHome(root)
    home.save(make_tiny())
    log = root.parent / "kept.csv"
    log.write_text("user,item,rating,time\n" + "".join(f"u{u},i{i},{1 + (u + i) % 5},{1000 + u * 7 + i}\n"
                                                       for u in range(12) for i in range(6)))
    assert CliRunner().invoke(app, ["data", "import", str(log), "--name", "kept", "--home", str(root)]).exit_code == 0
    sets = {**FAST_MODEL, "epochs": "1", "batch_size": "64"}
    run = train(resolve_settings({}, sets, dataset="tiny", device="cpu"), load_plugins(entry_points=False).registry,
                home=home).run
    return root, run.id


class Scratch:
    """A fresh copy of the template home per example, in one temporary folder per test."""

    def __init__(self, template: Path) -> None:
        self.template, self.base = template, Path(tempfile.mkdtemp(prefix="fuzz-"))
        self.home = self.base / "home"

    def fresh(self) -> Path:
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.copytree(self.template, self.home)
        return self.home

    def file(self, name: str) -> Path:
        return self.base / name

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def _report_outcomes():
    """How many generated cases ran and how they ended, by input (shown with ``pytest -s``)."""
    yield
    print("\nfuzz outcomes (exit code: cases):", json.dumps(OUTCOMES),
          "total", sum(sum(v.values()) for v in OUTCOMES.values()))


@pytest.fixture(scope="module")
def scratch(template):
    box = Scratch(template[0])
    yield box
    box.close()


# ----- values -------------------------------------------------------------------------------------------
WEIRD_TEXT = st.text(alphabet=st.sampled_from(list(string.ascii_letters + string.digits + " \t\x00\x7f,;:\"'é€𝄞\\-.")),
                     max_size=8)
NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 1e20, 1e300, -62135596801, 253402300800, 1.5, 2**63, 2**64]))
CELL = st.one_of(NUMBERS.map(str), WEIRD_TEXT, st.sampled_from(["", " ", "2020-01-01", "0000-01-01", "nan",
                                                                  "true", "1e400", "12:00", "2020-13-45"]))
COLUMN_NAMES = st.sampled_from(["user", "item", "rating", "time", "user_id", "movie_id", "timestamp", "score",
                                "x", "", "user ", "USER", "user:token", "ts"])


@st.composite
def delimited_files(draw, separator: str) -> tuple[bytes, list[str]]:
    names = draw(st.lists(COLUMN_NAMES, min_size=1, max_size=5))
    width = len(names)
    rows = draw(st.lists(st.lists(CELL, min_size=width, max_size=width + draw(st.integers(0, 1))), max_size=12))
    text = separator.join(names) + "\n" + "".join(separator.join(r) + "\n" for r in rows)
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()) and draw(st.booleans()):
        raw = draw(st.sampled_from([raw[: len(raw) // 2], raw + b"\xff\xfe", b"\xef\xbb\xbf" + raw, raw.replace(b"\n", b"\r\n")]))
    options = draw(st.sampled_from([[], ["--separator", separator], ["--separator", "::"], ["--separator", ""],
                                    ["--separator", "é"], ["--user", "user", "--item", "item"], ["--time", "x"],
                                    ["--rating", "score"], ["--force"]]))
    return raw, options


PARQUET_COLUMNS = st.sampled_from([
    pl.Series(values=[1, 2, 3]), pl.Series(values=["a", "b", " "]), pl.Series(values=[1.0, float("nan"), 3.0]),
    pl.Series(values=[1.0, 1e30, -1e30]), pl.Series(values=[True, False, True]), pl.Series(values=[[1], [2], []]),
    pl.Series(values=[{"a": 1}, {"a": 2}, {"a": 3}]), pl.Series(values=[None, None, None], dtype=pl.Int64),
    pl.Series(values=[1, None, 3]), pl.Series(values=["2020-01-01", "x", "2021-01-01"]),
    pl.Series(values=[b"a", b"\xff", b"c"]), pl.Series(values=[0.5, 1e300, 2.0]),
    pl.Series(values=[10**18, -10**18, 0]), pl.Series(values=["a\x00", "b", "c"]),
    pl.Series(values=[1, 2, 3]).cast(pl.Datetime("ms")), pl.Series(values=[-10**15, 0, 10**15]).cast(pl.Datetime("ms")),
    pl.Series(values=[1, 2, 3]).cast(pl.Date), pl.Series(values=[1, 2, 3]).cast(pl.Duration("us")),
    pl.Series(values=["x", "y", "x"]).cast(pl.Categorical), pl.Series(values=[1.5, 2.5, 3.5]),
    pl.Series(values=[2**63 - 1, 5, 7], dtype=pl.UInt64), pl.Series(values=[2**64 - 1, 5, 7], dtype=pl.UInt64),
])


# ----- importers ----------------------------------------------------------------------------------------
@fuzz(80)
@given(data=st.data())
def test_fuzz_csv_and_tsv_imports(scratch, data):
    separator = data.draw(st.sampled_from([",", "\t", ";"]))
    raw, options = data.draw(delimited_files(separator))
    suffix = data.draw(st.sampled_from([".csv", ".tsv", ".txt"]))
    path = scratch.file("log" + suffix)
    path.write_bytes(raw)
    home = scratch.fresh()
    fmt = [] if suffix != ".txt" else ["--format", data.draw(st.sampled_from(["csv", "tsv", "recbole", "ml-100k"]))]
    name = data.draw(st.sampled_from(["new", "kept", "tiny", "bad/name"]))
    run_checked("csv/tsv import", home, ["data", "import", path, "--name", name, *fmt, *options])


@fuzz(60)
@given(data=st.data())
def test_fuzz_parquet_imports(scratch, data):
    roles = data.draw(st.lists(st.sampled_from(["user", "item", "rating", "time", "extra"]), min_size=1, max_size=5,
                               unique=True))
    frame = pl.DataFrame({role: data.draw(PARQUET_COLUMNS) for role in roles})
    path = scratch.file("log.parquet")
    frame.write_parquet(path)
    home = scratch.fresh()
    run_checked("parquet import", home, ["data", "import", path, "--name", "new"])


NPY_ARRAYS = st.one_of(
    st.builds(lambda rows, dtype: np.asarray(rows, dtype=dtype),
              st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=12),
              st.sampled_from(["int64", "int32", "uint8", "uint64", "float64", "bool", "int16"])),
    st.sampled_from([np.array([[0, 2**63]], dtype=np.uint64), np.array([[-1, 0]]), np.array([0, 1, 2]),
                     np.zeros((3, 3), dtype=np.int64), np.array([["a", "b"]]), np.array([[2**31, 0]]),
                     np.array([[0.5, 1.0]]), np.zeros((0, 2), dtype=np.int64)]),
)


@fuzz(40)
@given(data=st.data())
def test_fuzz_split_folder_imports(scratch, data):
    folder = scratch.file("split")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    base = {"train": [[0, 0], [0, 1], [1, 2], [1, 0], [2, 1]], "valid": [[0, 2], [1, 1]], "test": [[2, 2]]}
    for split, rows in base.items():
        choice = data.draw(st.sampled_from(["good", "fuzz", "garbage", "missing"]))
        target = folder / f"{split}_list.npy"
        if choice == "good":
            np.save(target, np.array(rows))
        elif choice == "fuzz":
            np.save(target, data.draw(NPY_ARRAYS))
        elif choice == "garbage":
            target.write_bytes(data.draw(st.binary(max_size=64)))
    emb = data.draw(st.sampled_from(["none", "good", "nan", "text", "wrong shape", "object", "garbage", "huge"]))
    arrays = {"good": np.ones((3, 2)), "nan": np.full((3, 2), np.nan), "text": np.array([["a"]] * 3),
              "wrong shape": np.ones(3), "huge": np.full((3, 2), 1e300)}
    if emb in arrays:
        np.save(folder / "item_emb.npy", arrays[emb])
    elif emb == "object":
        np.save(folder / "item_emb.npy", np.array([[1, 2]] * 3, dtype=object), allow_pickle=True)
    elif emb == "garbage":
        (folder / "item_emb.npy").write_bytes(b"\x80\x04garbage")
    home = scratch.fresh()
    run_checked("split-folder import", home, ["data", "import-split", folder, "--name", "split"])


# ----- settings: TOML files and --set -------------------------------------------------------------------
SETTING_KEYS = ["epochs", "lr", "batch_size", "eval_batch_size", "seed", "ks", "metric", "patience", "eval_every",
                "checkpoint_every", "precision", "device", "weight_decay", "callbacks", "dims", "emb_size",
                "steps", "noise_scale", "noise_min", "noise_max", "history", "sampling", "dropout", "prediction",
                "noising_steps", "reweighting", "model", "dataset", "bogus", "train"]
TOML_VALUES = st.recursive(
    st.one_of(st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
              st.sampled_from(["", "cpu", "auto", "diffrec", "tiny", "recall@20", "fp32", "none", "x" * 3, "é"]),
              st.sampled_from([0, 1, 2, 5, 16, 100000000, -1, 1e308, 1e-300, 0.5])),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


@fuzz(40)
@given(data=st.data())
def test_fuzz_config_files(scratch, data):
    tables = {table: data.draw(st.dictionaries(st.sampled_from(SETTING_KEYS), TOML_VALUES, max_size=3))
              for table in ("", "train", "model", data.draw(st.sampled_from(["search", "trian", "model"])))}
    text = "".join(f"{k} = {toml_value(v)}\n" for k, v in tables.pop("").items())
    text += "".join(f"[{t}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in kv.items())
                    for t, kv in tables.items() if kv)
    if data.draw(st.integers(0, 9)) == 0:
        text = data.draw(st.sampled_from([text[: len(text) // 2], "\xff" + text, "[train\n", "a = = 1\n"]))
    path = scratch.file("config.toml")
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    home = scratch.fresh()
    run_checked("config file", home, ["train", "--dataset", "tiny", "--device", "cpu", "--quiet", "--samples", "0",
                                      "--config", path, "--set", "epochs=1", "--set", "steps=3"])


SET_VALUES = st.one_of(NUMBERS.map(str), WEIRD_TEXT, st.sampled_from([
    "[]", "[0]", '["a"]', "[[10],20]", "[1e400]", "1e9", "1.5", "-1", "nan", "inf", "true", "[8, 8]", "{}", "5,10",
    "recall@5", "ndcg@20", "bf16", "uniform", "eps", "time-linear", "cuda", "100000000", "[100000000]"]))


@fuzz(40)
@given(data=st.data())
def test_fuzz_set_values(scratch, data):
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(SETTING_KEYS), SET_VALUES), min_size=1, max_size=3))
    sets = [a for key, value in pairs for a in ("--set", f"{key}={value}")]
    if data.draw(st.integers(0, 9)) == 0:
        sets += ["--set", data.draw(st.sampled_from(["novalue", "=1", " = ", "a=b=c"]))]
    home = scratch.fresh()
    run_checked("--set", home, ["train", "--dataset", "tiny", "--device", "cpu", "--quiet", "--samples", "0", *sets,
                                "--set", "epochs=1", "--set", "steps=3"])


# ----- edited files: checkpoint.json, a dataset's meta.json and arrays ------------------------------------
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=False), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5)


def _paths(value, prefix=()) -> list[tuple]:
    """Every path to a value inside a JSON document."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def edit_json(data, document, skip: tuple[tuple, ...] = ()):
    """``document`` with one value replaced by a generated one, or one key removed (not under ``skip``)."""
    paths = [p for p in _paths(document)[1:] if not any(p[:len(s)] == s for s in skip)]
    path = data.draw(st.sampled_from(paths))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON_VALUES)
    return document


# Every field of checkpoint.json is fuzzed (test_malformed.py has the explicit cases for the model's sizes).
UNCHECKED: tuple[tuple[str, ...], ...] = ()


@fuzz(30)
@given(data=st.data())
def test_fuzz_checkpoint_descriptions(template, scratch, data):
    home = scratch.fresh()
    path = home / "runs" / template[1] / "checkpoint" / "checkpoint.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps(edit_json(data, document, skip=UNCHECKED)))
    run_checked("checkpoint.json", home, ["eval", template[1]])


@fuzz(30)
@given(data=st.data())
def test_fuzz_dataset_descriptions(scratch, data):
    home = scratch.fresh()
    kind = data.draw(st.sampled_from(["datasets/tiny", "logs/kept"]))
    path = home / kind / "meta.json"
    path.write_text(json.dumps(edit_json(data, json.loads(path.read_text()))))
    name = kind.split("/")[1]
    run_checked("meta.json", home, ["data", "info", name])
    run_checked("meta.json", home, ["data", "list"])


@fuzz(30)
@given(data=st.data())
def test_fuzz_dataset_arrays(template, scratch, data):
    home = scratch.fresh()
    folder = home / "datasets" / "tiny"
    with np.load(folder / "splits.npz") as z:
        arrays = {k: z[k] for k in z.files}
    key = data.draw(st.sampled_from(sorted(arrays)))
    change = data.draw(st.sampled_from(["drop", "replace", "shift", "truncate file", "item_emb"]))
    if change == "drop":
        del arrays[key]
    elif change == "replace":
        arrays[key] = data.draw(NPY_ARRAYS)
    elif change == "shift" and arrays[key].dtype.kind in "iuf":
        arrays[key] = arrays[key] + data.draw(st.integers(-3, 3))
    elif change == "shift":  # the raw ids, text: one too few
        arrays[key] = arrays[key][:-1]
    elif change == "item_emb":
        np.save(folder / "item_emb.npy", data.draw(st.sampled_from(
            [np.ones((30, 2)), np.ones((29, 2)), np.full((30, 2), np.inf), np.array([["a"]] * 30)])))
    np.savez(folder / "splits.npz", **arrays)
    if change == "truncate file":
        raw = (folder / "splits.npz").read_bytes()
        (folder / "splits.npz").write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    run_checked("dataset arrays", home, ["eval", template[1]])
