"""The synthetic log generator, ``diffrec data generate``, and the authors' ML-1M split against Table 1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.demo import generate_log
from diffrec_cli.data.ingest import read_log
from test_bad_input import fails_cleanly

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ML1M_CLEAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m_clean"


@pytest.fixture(scope="module")
def log() -> pl.DataFrame:
    return generate_log(2000, 1500, 60_000, seed=11)


def test_generator_is_deterministic_and_hits_the_requested_size(log):
    assert log.columns == ["user", "item", "rating", "time"]
    assert log.equals(generate_log(2000, 1500, 60_000, seed=11))
    assert not log.equals(generate_log(2000, 1500, 60_000, seed=12))
    assert 0.99 * 60_000 <= log.height <= 60_000
    assert log.select("user", "item").is_duplicated().sum() == 0
    assert log["user"].n_unique() == 2000 and log["item"].max() < 1500


def test_generator_has_long_tails_taste_driven_ratings_and_drift():
    log = generate_log(2000, 1500, 60_000, seed=11, with_groups=True)
    assert log.drop("group").equals(generate_log(2000, 1500, 60_000, seed=11))
    item_counts = np.sort(log.group_by("item").len()["len"].to_numpy())[::-1]
    assert item_counts[: len(item_counts) // 10].sum() / item_counts.sum() > 0.3  # 10 % of items, > 30 % of use
    user_counts = log.group_by("user").len()["len"].to_numpy()
    assert user_counts.min() >= 10 and user_counts.max() > 4 * np.median(user_counts)
    assert set(log["rating"].unique().to_list()) == {1, 2, 3, 4, 5}
    # ratings follow taste: in the item group a user picks most, ratings are clearly higher
    favourite = (log.group_by("user", "group").len().sort("len", "group", descending=True)
                 .group_by("user").first().select("user", fav="group"))
    rated = log.join(favourite, on="user").with_columns(in_fav=pl.col("group") == pl.col("fav"))
    means = dict(rated.group_by("in_fav").agg(pl.col("rating").cast(pl.Float64).mean()).iter_rows())
    assert means[True] > means[False] + 0.3
    # tastes drift: a user's first and last thirds differ in groups more than interleaved halves do
    ordered = log.sort("user", "time").with_columns(
        pos=pl.int_range(pl.len()).over("user"), n=pl.len().over("user"))

    def distance(a: pl.Expr, b: pl.Expr) -> float:
        share = (ordered.with_columns(side=pl.when(a).then(0).when(b).then(1).otherwise(None)).drop_nulls("side")
                 .group_by("user", "side", "group").len()
                 .with_columns(p=pl.col("len") / pl.col("len").sum().over("user", "side")))
        wide = share.pivot(on="side", index=["user", "group"], values="p").fill_null(0)
        return float(wide.group_by("user").agg(((pl.col("0") - pl.col("1")).abs().sum() / 2).alias("tv"))["tv"].mean())

    early_late = distance(pl.col("pos") < pl.col("n") / 3, pl.col("pos") >= 2 * pl.col("n") / 3)
    odd_even = distance(pl.col("pos") % 2 == 0, pl.col("pos") % 2 == 1)
    assert early_late > odd_even + 0.05
    span = log.group_by("user").agg((pl.col("time").max() - pl.col("time").min()).alias("span"))["span"]
    assert span.median() > 86_400 * 20


def test_generate_cli_stores_a_log_and_writes_a_csv_that_imports_back(home, tmp_path):
    out = tmp_path / "gen.csv"
    result = CliRunner().invoke(app, ["data", "generate", "--name", "gen", "--users", "150", "--items", "120",
                                      "--interactions", "4000", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    assert re.search(r"users\s*│\s*150\b", text), text
    meta = home.log_meta("gen")
    assert meta["source"] == {"format": "generated", "users": 150, "items": 120, "interactions": 4000, "seed": 3}
    assert meta["has_rating"] and meta["has_time"] and meta["duplicates_dropped"] == 0
    back = read_log(out)
    stored = home.load_log("gen")
    assert back.frame.drop("row").equals(stored.frame.drop("row"))
    assert back.meta["rows"] == meta["rows"] == generate_log(150, 120, 4000, seed=3).height
    # and it prepares
    result = CliRunner().invoke(app, ["data", "prepare", "gen", "--name", "gen-clean"])
    assert result.exit_code == 0, result.output
    assert home.meta("gen-clean")["recipe"]["protocol"] == "clean"
    fails_cleanly(["data", "generate", "--name", "gen", "--users", "5", "--items", "5", "--interactions", "50"],
                  "'gen' already exists", root=home.root)
    fails_cleanly(["data", "generate", "--name", "g2", "--users", "50", "--items", "5", "--interactions", "10"],
                  "at least one interaction per user", root=home.root)
    fails_cleanly(["data", "generate", "--name", "g2", "--users", "5", "--items", "5", "--interactions", "50",
                   "--out", tmp_path / "x.json"], "--out", ".csv", root=home.root)


@pytest.mark.skipif(not (ML1M_CLEAN / "train_list.npy").is_file(),
                    reason=f"the authors' ML-1M split is not at {ML1M_CLEAN} (MovieLens may not be redistributed)")
def test_ml1m_clean_split_reproduces_table_1(home):
    result = CliRunner().invoke(app, ["data", "import-split", str(ML1M_CLEAN), "--name", "ml-1m_clean"])
    assert result.exit_code == 0, result.output
    info = json.loads(CliRunner().invoke(app, ["data", "info", "ml-1m_clean", "--json"]).stdout)
    c = info["counts"]
    assert (c["users"], c["items"], c["interactions"]) == (5949, 2810, 571_531)
    assert (c["train"], c["valid"], c["test"]) == (403_277, 110_722, 57_532)
    text = ANSI.sub("", CliRunner().invoke(app, ["data", "info", "ml-1m_clean"]).stdout)
    for label, value in (("users", "5,949"), ("items", "2,810"), ("all interactions", "571,531"),
                         ("density", "3.4189%")):
        assert re.search(rf"{label}\s*│\s*{re.escape(value)}\s", text), (label, text)
