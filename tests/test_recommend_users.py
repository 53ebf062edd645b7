"""``diffrec recommend`` for batches of users: unknown users (skip or cold start), typed ids in Parquet and
JSON, CSV on standard output, and output files that honour the umask."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections import Counter

import numpy as np
import polars as pl
import pytest

from conftest import home_with_one_run, invoke, make_tiny


@pytest.fixture(scope="module")
def int_run(tmp_path_factory):
    """A trained run on a dataset whose raw ids are integers (users 100..139, items 1000..1029)."""
    tiny = make_tiny("ints")
    data = dataclasses.replace(tiny, user_ids=np.arange(100, 140), item_ids=np.arange(1000, 1030))
    return home_with_one_run(tmp_path_factory.mktemp("int-home"), data)


def popular_by_hand(data, k):
    """Items by training-interaction count, most first, ties by the lower index."""
    counts = Counter(data.train.nonzero()[1].tolist())
    ranked = sorted(range(data.n_items), key=lambda i: (-counts[i], i))[:k]
    return [int(data.item_ids[i]) for i in ranked], [float(counts[i]) for i in ranked]


def test_an_unknown_user_fails_the_batch_naming_every_unknown_id(int_run, tmp_path):
    home, run, env = int_run
    result = invoke(["recommend", run, "-u", "101", "-u", "7", "-u", "x9"], env, code=2)
    assert result.stderr.strip() == (
        "error: 2 unknown user ids ('7', 'x9') in dataset 'ints'; use --skip-unknown or --cold-start to "
        "leave them out or give them the most popular items")
    assert result.stdout == ""


def test_skip_unknown_reports_and_skips(int_run, tmp_path):
    home, run, env = int_run
    users = tmp_path / "users.txt"
    users.write_text("101\n7\n102\n7\n")
    skipped, direct = tmp_path / "skipped.parquet", tmp_path / "direct.parquet"
    result = invoke(["recommend", run, "--users-file", users, "--skip-unknown", "-k", "5", "--out", skipped], env)
    assert result.stderr.strip() == "skipped 1 unknown user(s): 7"
    invoke(["recommend", run, "-u", "101", "-u", "102", "-k", "5", "--out", direct], env)
    assert pl.read_parquet(skipped).equals(pl.read_parquet(direct))
    assert pl.read_parquet(skipped)["user"].to_list() == [101] * 5 + [102] * 5


def test_cold_start_popular_gives_unknown_users_the_most_popular_items(int_run, tmp_path):
    home, run, env = int_run
    data = home.load("ints")
    out = tmp_path / "recs.parquet"
    result = invoke(["recommend", run, "-u", "101", "-u", "7", "-u", "102", "-k", "4", "--cold-start", "popular",
                     "--out", out], env)
    assert result.stderr.strip() == "gave the most popular items to 1 unknown user(s): 7"
    frame = pl.read_parquet(out)
    assert frame["user"].to_list() == [101] * 4 + [7] * 4 + [102] * 4  # the order given
    items, counts = popular_by_hand(data, 4)
    cold = frame.filter(pl.col("user") == 7)
    assert cold["item"].to_list() == items and cold["score"].to_list() == counts
    assert cold["rank"].to_list() == [1, 2, 3, 4]
    direct = tmp_path / "direct.parquet"
    invoke(["recommend", run, "-u", "101", "-u", "102", "-k", "4", "--out", direct], env)
    assert frame.filter(pl.col("user") != 7).equals(pl.read_parquet(direct))


def test_cold_start_and_skip_are_exclusive_and_cold_start_is_checked(int_run):
    home, run, env = int_run
    both = invoke(["recommend", run, "-u", "7", "--skip-unknown", "--cold-start", "popular"], env, code=2)
    assert both.stderr.strip() == "error: unknown users are either skipped or given popular items, not both"
    bad = invoke(["recommend", run, "-u", "7", "--cold-start", "random"], env, code=2)
    assert bad.stderr.strip() == "error: cold start must be one of popular, got 'random'"


def test_parquet_keeps_integer_ids_and_json_and_stdout_csv_agree(int_run, tmp_path):
    home, run, env = int_run
    out = tmp_path / "recs.parquet"
    args = ["recommend", run, "-u", "103", "-u", "110", "-k", "3"]
    invoke([*args, "--out", out], env)
    frame = pl.read_parquet(out)
    assert frame.schema == pl.Schema({"user": pl.Int64, "rank": pl.Int64, "item": pl.Int64, "score": pl.Float64})
    rows = json.loads(invoke([*args, "--json"], env).stdout)
    assert rows == frame.to_dicts()
    assert all(isinstance(r["user"], int) and isinstance(r["item"], int) for r in rows)
    stdout = invoke([*args, "--out", "-"], env).stdout
    assert pl.read_csv(io.StringIO(stdout)).equals(frame)
    both = invoke([*args, "--json", "--out", "-"], env, code=2)
    assert both.stderr.strip() == "error: --json prints the rows; leave out --out (or --out - for CSV)"


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_recommend_out_honours_the_umask(int_run, tmp_path, umask, mode):
    home, run, env = int_run
    out = tmp_path / "recs.csv"
    previous = os.umask(umask)
    try:
        invoke(["recommend", run, "-u", "101", "--out", out], env)
    finally:
        os.umask(previous)
    assert out.stat().st_mode & 0o777 == mode
