"""The protocols as recipes: exact splits on small hand-made logs, noise, temporal order, storage."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.demo import build_demo, generate_log
from diffrec_cli.data.ingest import log_from_frame
from diffrec_cli.data.recipes import RECIPES, Clean, make_recipe
from diffrec_cli.errors import DiffrecError
from test_bad_input import fails_cleanly


def hand_log(with_time: bool = True) -> pl.DataFrame:
    """Users a, b, d keep >= 10 ratings >= 4; c has only 9 and is dropped.

    a: item k at time 100 + 10k (k = 0..9), written in shuffled order; low ratings on 20 (t 135, in a's train
       period), 12 (t 175, valid period), 22 (t 195, test period), 4 (t 50: a pair a also rated >= 4);
       a rates 3 again later (a repeat) and one row is an exact duplicate.
    b: positions 0..19 on items 9,8,…,0,10,…,18,25 at time 1000 + 10·pos, except that positions 13 and 14
       share time 1130 (the file order decides); low rating on 19 (t 1005). Item 25 is seen nowhere in train.
    d: items 14..20, 0, 1, 2 at times 2000, 2010, …
    """
    rows = []
    for k in (3, 7, 0, 9, 5, 1, 8, 2, 6, 4):
        rows.append(("a", k, 5 if k % 2 else 4, 100 + 10 * k))
    rows += [("a", 20, 2, 135), ("a", 12, 3, 175), ("a", 22, 1, 195), ("a", 4, 2, 50), ("a", 3, 5, 300),
             ("a", 7, 5, 170)]  # the last row repeats a's (7, 5, 170) exactly
    b_items = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 25]
    for pos, item in enumerate(b_items):
        rows.append(("b", item, 4, 1000 + 10 * pos - (10 if pos == 14 else 0)))
    rows.append(("b", 19, 3, 1005))
    rows += [("c", 30 + k, 5, 500 + k) for k in range(9)] + [("c", 0, 1, 510)]
    rows += [("d", item, 4, 2000 + 10 * k) for k, item in enumerate([14, 15, 16, 17, 18, 19, 20, 0, 1, 2])]
    frame = pl.DataFrame(rows, schema=["user", "item", "rating", "time"], orient="row")
    return frame if with_time else frame.drop("time")


def pairs(data, split: str) -> dict[str, set]:
    """Raw user id → set of raw item ids in one split."""
    m = data.split(split)
    out: dict[str, set] = {}
    for u in range(data.n_users):
        items = m.indices[m.indptr[u]:m.indptr[u + 1]]
        if len(items):
            out[str(data.user_ids[u])] = {int(data.item_ids[i]) for i in items}
    return out


def chronological(data, user: str) -> list[int]:
    """A user's training items ordered by train_order."""
    u = [str(x) for x in data.user_ids].index(user)
    lo, hi = data.train.indptr[u], data.train.indptr[u + 1]
    order = np.asarray(data.train_order)[lo:hi]
    assert sorted(order.tolist()) == list(range(hi - lo))  # positions 0..n−1, no gaps
    return [int(data.item_ids[i]) for i in data.train.indices[lo:hi][np.argsort(order)]]


CLEAN = {
    "train": {"a": set(range(7)), "b": set(range(14)), "d": {14, 15, 16, 17, 18, 19, 20}},
    "valid": {"a": {7, 8}, "b": {14, 15, 16, 17}, "d": {0, 1}},
    "test": {"a": {9}, "b": {18}, "d": {2}},
}


@pytest.fixture(scope="module")
def log():
    return log_from_frame(hand_log())


@pytest.fixture(scope="module")
def clean(log):
    return Clean().prepare(log, "clean")


def test_clean_per_user_split_is_exact(log, clean):
    assert log.meta["duplicates_dropped"] == 1
    for split, expected in CLEAN.items():
        assert pairs(clean, split) == expected, split
    assert clean.user_ids.tolist() == ["a", "b", "d"]  # c had 9 ratings >= 4
    assert clean.item_ids.tolist() == list(range(21))  # 25 was only in b's test; 22 only rated low
    report = clean.meta["report"]
    assert report["unseen_dropped"] == {"valid": 0, "test": 1}
    assert report["repeated_pairs_dropped"] == 1  # a's later 3
    assert report["below_min_rating"] == 6  # a: 4, b: 1, c: 1
    assert clean.meta["recipe"] == {"protocol": "clean", "min_rating": 4.0, "min_user": 10, "min_item": 0,
                                    "ratios": [0.7, 0.2, 0.1], "split": "per-user"}


def test_clean_split_is_chronological_across_the_boundaries(clean):
    table = clean.interactions
    for user in range(clean.n_users):
        mine = table.filter(pl.col("user") == user)
        times = {s: mine.filter(pl.col("split") == s)["time"] for s in ("train", "valid", "test")}
        assert times["train"].max() <= times["valid"].min() <= times["valid"].max() <= times["test"].min()
    assert set(table["rating"].to_list()) == {4.0, 5.0}
    # b's positions 13 and 14 share a timestamp: the earlier row (item 13) is the last in train
    assert chronological(clean, "b")[-1] == 13 and 14 in pairs(clean, "valid")["b"]


def test_train_order_is_the_chronological_position(clean):
    assert chronological(clean, "a") == [0, 1, 2, 3, 4, 5, 6]
    assert chronological(clean, "b") == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 10, 11, 12, 13]
    assert chronological(clean, "d") == [14, 15, 16, 17, 18, 19, 20]


def test_rating_threshold_ratios_and_min_user_are_settings(log):
    lower = make_recipe("clean", {"min_rating": "3", "ratios": "0.8,0.1,0.1"}).prepare(log, "x")
    # with ratings >= 3, a also keeps 12 (t 175, before 8 at t 180): 11 ratings → train 9, valid 1, test 1
    assert pairs(lower, "train")["a"] == {0, 1, 2, 3, 4, 5, 6, 7, 12}
    assert pairs(lower, "valid")["a"] == {8} and pairs(lower, "test")["a"] == {9}
    assert lower.meta["recipe"]["min_rating"] == 3.0 and lower.meta["recipe"]["ratios"] == [0.8, 0.1, 0.1]
    assert set(lower.interactions["rating"].to_list()) == {3.0, 4.0, 5.0}
    with_c = make_recipe("clean", {"min_user": "9"}).prepare(log, "x")
    assert "c" in with_c.user_ids.tolist()
    assert pairs(with_c, "train")["c"] == {30, 31, 32, 33, 34, 35, 36}


def test_global_split_makes_one_time_cut():
    frame = pl.DataFrame([
        ("u1", "i1", 5, 1), ("u2", "i2", 5, 2), ("u1", "i2", 5, 3), ("u2", "i3", 5, 4), ("u1", "i3", 5, 5),
        ("u2", "i4", 5, 6), ("u3", "i1", 5, 7), ("u1", "i4", 5, 8), ("u4", "i2", 5, 9), ("u2", "i1", 5, 10),
    ], schema=["user", "item", "rating", "time"], orient="row")
    data = make_recipe("clean", {"split": "global", "min_user": "1"}).prepare(log_from_frame(frame), "g")
    got = {s: {u: {str(i) for i in v} for u, v in pairs_raw(data, s).items()} for s in ("train", "valid", "test")}
    assert got == {"train": {"u1": {"i1", "i2", "i3"}, "u2": {"i2", "i3", "i4"}, "u3": {"i1"}},
                   "valid": {"u1": {"i4"}},  # u4 never trains: its valid row is dropped
                   "test": {"u2": {"i1"}}}
    assert data.user_ids.tolist() == ["u1", "u2", "u3"]
    assert data.meta["report"]["unseen_dropped"] == {"valid": 1, "test": 0}


def pairs_raw(data, split):
    m = data.split(split)
    out = {}
    for u in range(data.n_users):
        items = m.indices[m.indptr[u]:m.indptr[u + 1]]
        if len(items):
            out[str(data.user_ids[u])] = {data.item_ids[i] for i in items}
    return out


def test_item_k_core_repeats_until_stable():
    frame = pl.DataFrame([("u1", 1, 5, 1), ("u1", 2, 5, 2), ("u2", 1, 5, 3), ("u2", 2, 5, 4), ("u3", 1, 5, 5),
                          ("u3", 3, 5, 6), ("u4", 3, 5, 7)], schema=["user", "item", "rating", "time"], orient="row")
    report: dict = {}
    kept = make_recipe("clean", {"min_user": "2", "min_item": "2"})._positives(log_from_frame(frame), report)
    # u4 (1 rating) goes, then item 3 (1 left), then u3 (1 left): u1, u2 × items 1, 2 remain
    assert sorted(kept.select("user", "item").rows()) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert report["core_filter_dropped"] == 3


def test_noisy_natural_keeps_the_clean_test_set_and_adds_low_ratings_by_time(log, clean):
    noisy = make_recipe("noisy-natural", {"proportion": "1"}).prepare(log, "nn")
    assert pairs(noisy, "test") == pairs(clean, "test") == CLEAN["test"]
    # every low-rated candidate of a kept user in its train/valid period is added (fewer than requested)
    assert pairs(noisy, "train") == {**CLEAN["train"], "a": set(range(7)) | {20}, "b": set(range(14)) | {19}}
    assert pairs(noisy, "valid") == {**CLEAN["valid"], "a": {7, 8, 12}}
    assert noisy.meta["report"]["natural_noise"] == {"candidates": 3, "requested": 36, "train": 2, "valid": 1}
    assert chronological(noisy, "a") == [0, 1, 2, 3, 20, 4, 5, 6]  # 20 was rated at t 135
    table = noisy.interactions
    assert sorted(table.filter("noise")["rating"].to_list()) == [2.0, 3.0, 3.0]
    assert table.filter(~pl.col("noise"))["rating"].min() == 4.0
    # a smaller proportion samples from the candidates: round(0.05 · 36) = 2 of the 3
    some = make_recipe("noisy-natural", {"proportion": "0.05", "seed": "3"}).prepare(log, "nn")
    assert some.interactions.filter("noise").height == 2
    assert pairs(some, "test") == CLEAN["test"]
    extra = sum(len(v) for s in ("train", "valid") for v in pairs(some, s).values()) - 36
    assert extra == 2


def test_noisy_natural_on_a_generated_log_stays_about_as_large_as_clean():
    log = log_from_frame(generate_log(300, 200, 12_000, seed=4))
    clean = Clean().prepare(log, "c")
    noisy = make_recipe("noisy-natural").prepare(log, "n")
    base = clean.train.nnz + clean.valid.nnz
    assert noisy.train.nnz + noisy.valid.nnz == base + round(0.1 * base)
    assert pairs(noisy, "test") == pairs(clean, "test")
    for split in ("train", "valid"):  # clean interactions are all still there
        got = pairs(noisy, split)
        assert all(items <= got[u] for u, items in pairs(clean, split).items())


def test_noisy_random_adds_the_proportion_per_user_and_never_a_duplicate():
    frame = generate_log(300, 200, 12_000, seed=5)
    log = log_from_frame(frame)
    clean = Clean().prepare(log, "c")
    noisy = make_recipe("noisy-random", {"proportion": "0.3", "seed": "7"}).prepare(log, "r")
    assert pairs(noisy, "test") == pairs(clean, "test")
    touched = {}
    for u, i in frame.select("user", "item").iter_rows():
        touched.setdefault(str(u), set()).add(i)
    for split in ("train", "valid"):
        before, after = pairs(clean, split), pairs(noisy, split)
        for user, items in before.items():
            added = after[user] - items
            assert items <= after[user]
            assert len(added) == int(np.floor(0.3 * len(items) + 0.5)), (split, user)
            assert not added & touched[user]  # never an item the user interacted with
    # train and valid noise are disjoint too, and the CSR holds each pair once
    tr, va = pairs(noisy, "train"), pairs(noisy, "valid")
    assert all(not (tr[u] & va.get(u, set())) for u in tr)
    table = noisy.interactions
    assert table.select("user", "item").is_duplicated().sum() == 0
    assert table.filter("noise").height == noisy.train.nnz + noisy.valid.nnz - clean.train.nnz - clean.valid.nnz
    assert table.filter("noise")["rating"].null_count() == table.filter("noise").height
    again = make_recipe("noisy-random", {"proportion": "0.3", "seed": "7"}).prepare(log, "r")
    other = make_recipe("noisy-random", {"proportion": "0.3", "seed": "8"}).prepare(log, "r")
    assert again.fingerprint() == noisy.fingerprint() != other.fingerprint()


def test_temporal_keeps_train_in_time_order_and_needs_timestamps(log, clean):
    temporal = make_recipe("temporal").prepare(log, "t")
    assert temporal.fingerprint() == clean.fingerprint()
    np.testing.assert_array_equal(temporal.train_order, clean.train_order)
    table = temporal.interactions.filter(pl.col("split") == "train").sort("user", "position")
    for user in range(temporal.n_users):
        times = table.filter(pl.col("user") == user)["time"].to_list()
        assert times == sorted(times) and None not in times
    assert temporal.meta["recipe"]["protocol"] == "temporal"
    untimed = log_from_frame(hand_log(with_time=False))
    with pytest.raises(DiffrecError, match="temporal needs timestamps"):
        make_recipe("temporal").prepare(untimed, "t")
    # clean accepts a log without times: the file order is the time order
    data = Clean().prepare(untimed, "u")
    assert chronological(data, "a") == [3, 7, 0, 9, 5, 1, 8]
    assert "row" in data.meta["report"]["time_order"]


def test_recipe_registry_and_settings_errors():
    assert list(RECIPES) == ["clean", "noisy-natural", "noisy-random", "temporal"]
    with pytest.raises(DiffrecError, match="unknown protocol 'dirty'"):
        make_recipe("dirty")
    with pytest.raises(DiffrecError, match="no setting 'min_users'.*min_user"):
        make_recipe("clean", {"min_users": "3"})
    with pytest.raises(DiffrecError, match="min_user: cannot read 'ten' as int"):
        make_recipe("clean", {"min_user": "ten"})
    with pytest.raises(DiffrecError, match="ratios must be three positive"):
        make_recipe("clean", {"ratios": "0.7,0.3"})
    with pytest.raises(DiffrecError, match="split must be one of per-user, global"):
        make_recipe("clean", {"split": "random"})
    with pytest.raises(DiffrecError, match="proportion must be in"):
        make_recipe("noisy-random", {"proportion": "0"})


def test_demo_uses_the_clean_recipe_and_stays_small():
    demo = build_demo()
    assert demo.meta["recipe"]["protocol"] == "clean" and demo.meta["source"]["format"] == "generated"
    c = demo.counts()
    assert 20_000 < c["train"] < 30_000 and c["users"] > 900 and c["items"] > 800


# ----- the command line and the data home ------------------------------------------------------------
def test_prepare_through_the_cli_stores_parquet_and_loads_without_the_recipe(home, tmp_path, monkeypatch):
    path = tmp_path / "ratings.csv"
    hand_log().write_csv(path)
    assert CliRunner().invoke(app, ["data", "import", str(path), "--name", "raw"]).exit_code == 0
    result = CliRunner().invoke(app, ["data", "prepare", "raw", "--protocol", "noisy-natural", "--name", "nn",
                                      "--set", "proportion=1", "--set", "min-user=10"])
    assert result.exit_code == 0, result.output
    meta = json.loads(CliRunner().invoke(app, ["data", "info", "nn", "--json"]).stdout)
    assert meta["recipe"]["protocol"] == "noisy-natural" and meta["recipe"]["proportion"] == 1.0
    assert meta["source"]["log"] == "raw" and meta["source"]["format"] == "csv"
    assert meta["counts"] == {"users": 3, "items": 21, "train": 30, "valid": 9, "test": 3, "interactions": 42,
                              "density": pytest.approx(42 / 63)}
    assert meta["ranges"]["test"] == {"rating_range": [4.0, 5.0], "time_range": [190, 2090]}
    assert meta["ranges"]["train"]["rating_range"] == [2.0, 5.0]
    table = pl.read_parquet(home.dataset_dir("nn") / "interactions.parquet")
    assert table.columns == ["user", "item", "split", "rating", "time", "position", "noise"]
    assert table.group_by("split").len().sort("split").rows() == [("test", 3), ("train", 30), ("valid", 9)]

    def boom(*args, **kwargs):
        raise AssertionError("loading re-ran the recipe")

    for cls in RECIPES.values():
        monkeypatch.setattr(cls, "prepare", boom)
    loaded = home.load("nn")
    assert pairs(loaded, "test") == CLEAN["test"]
    assert chronological(loaded, "a") == [0, 1, 2, 3, 20, 4, 5, 6]
    assert loaded.fingerprint() == meta["fingerprint"]
    listing = json.loads(CliRunner().invoke(app, ["data", "list", "--json"]).stdout)
    assert [(r["name"], r["kind"], r.get("protocol")) for r in listing] == [("nn", "dataset", "noisy-natural"),
                                                                          ("raw", "log", None)]
    result = CliRunner().invoke(app, ["data", "remove", "nn", "raw"])
    assert result.exit_code == 0 and home.names() == [] and home.log_names() == []


def test_prepare_bad_input_leaves_nothing(home, tmp_path):
    path = tmp_path / "ratings.csv"
    hand_log().write_csv(path)
    assert CliRunner().invoke(app, ["data", "import", str(path), "--name", "raw"]).exit_code == 0
    once = pl.DataFrame({"user": ["x", "y"], "item": [1, 1], "rating": [5, 5], "time": [1, 2]})
    once.write_csv(tmp_path / "once.csv")
    assert CliRunner().invoke(app, ["data", "import", str(tmp_path / "once.csv"), "--name", "once"]).exit_code == 0
    root = home.root
    fails_cleanly(["data", "prepare", "once", "--name", "p", "--set", "min_user=1"], "recipe clean",
                  "leaves the valid split", "empty", root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "p", "--set", "min_user=50"], "no user", "min_user",
                  root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "p", "--set", "min_rating=6"], "rating >= 6", root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "p", "--protocol", "dirty"], "unknown protocol 'dirty'",
                  root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "p", "--set", "ratios=a,b"], "ratios", root=root)
    fails_cleanly(["data", "prepare", "nothing", "--name", "p"], "no log named 'nothing'", root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "raw"], "'raw' is already a raw log", root=root)
    fails_cleanly(["data", "prepare", "raw", "--name", "../p"], "invalid dataset name", root=root)
    assert CliRunner().invoke(app, ["data", "prepare", "raw", "--name", "p"]).exit_code == 0
    fails_cleanly(["data", "prepare", "raw", "--name", "p"], "'p' already exists", "--force", root=root)
    fails_cleanly(["data", "prepare", "p", "--name", "q"], "'p' is a prepared dataset", root=root)
    fails_cleanly(["data", "remove", "p", "nope"], "no dataset named 'nope'", root=root)
