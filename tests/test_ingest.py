"""Importing interaction logs with polars: formats, column guessing, id maps, duplicates, bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.formats import detect_format
from diffrec_cli.data.ingest import log_from_frame, read_log
from diffrec_cli.errors import DiffrecError
from test_bad_input import fails_cleanly

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

CSV = """userId,movieId,rating,timestamp,extra
alice,B00X,5,1000,x
bob,007,3.5,1010,y
alice,42,4,1005,z
carol,B00X,2,990,w
alice,B00X,5,1000,x
bob,42,1,1020,v
alice,B00X,4,2000,u
"""


def raw_rows(log) -> list[tuple]:
    """The log's interactions with the file's own ids again, in stored order."""
    users = log.user_ids.to_list()
    items = log.item_ids.to_list()
    return [(users[u], items[i], r, t) for u, i, r, t in
            log.frame.select("user", "item", "rating", "time").iter_rows()]


def test_csv_guesses_columns_keeps_raw_ids_and_drops_exact_duplicates(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(CSV)
    log = read_log(path)
    assert log.meta["source"]["columns"] == {"user": "userId", "item": "movieId", "rating": "rating",
                                             "time": "timestamp"}
    assert (log.meta["rows_read"], log.meta["duplicates_dropped"], log.meta["rows"]) == (7, 1, 6)
    # "007" is not a canonical integer, so item ids stay strings; dense ids are ranks of the sorted raw ids
    assert log.user_ids.to_list() == ["alice", "bob", "carol"]
    assert log.item_ids.to_list() == ["007", "42", "B00X"]
    assert raw_rows(log) == [("alice", "B00X", 5.0, 1000), ("bob", "007", 3.5, 1010), ("alice", "42", 4.0, 1005),
                             ("carol", "B00X", 2.0, 990), ("bob", "42", 1.0, 1020), ("alice", "B00X", 4.0, 2000)]
    assert log.frame["row"].to_list() == [0, 1, 2, 3, 5, 6]  # the file's rows, the duplicate (row 4) gone
    assert (log.meta["users"], log.meta["items"]) == (3, 3)
    assert log.meta["rating_range"] == [1.0, 5.0] and log.meta["time_range"] == [990, 2000]


def test_integer_ids_stay_integers_and_dates_become_unix_seconds(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("user_id\titem_id\tdate\n10\t3\t2020-01-02\n9\t3\t2020-01-01 12:00:00\n10\t100\t2020-01-03\n")
    log = read_log(path)
    assert log.user_ids.dtype == pl.Int64 and log.user_ids.to_list() == [9, 10]
    assert log.item_ids.to_list() == [3, 100]  # numeric order, not "100" < "3"
    assert not log.has_rating and log.frame["rating"].null_count() == 3
    assert log.frame["time"].to_list() == [1577923200, 1577880000, 1578009600]


def test_movielens_and_recbole_and_parquet_formats(tmp_path):
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    udata = tmp_path / "u.data"
    udata.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    inter = tmp_path / "ml.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t10\nu2\ti1\t5\t11\n")
    parquet = tmp_path / "log.parquet"
    pl.DataFrame({"who": ["x", "y"], "what": [7, 8], "when": [5, 6]}).write_parquet(parquet)
    assert [detect_format(p).name for p in (dat, udata, inter, parquet)] == ["ml-1m", "ml-100k", "recbole", "parquet"]
    a = read_log(dat)
    assert raw_rows(a) == [(1, 1193, 5.0, 978300760), (1, 661, 3.0, 978302109), (2, 1193, 4.0, 978298413)]
    b = read_log(udata)
    assert raw_rows(b) == [(196, 242, 3.0, 881250949), (186, 302, 3.0, 891717742)]
    c = read_log(inter)
    assert c.meta["source"]["columns"]["user"] == "user_id:token"
    assert raw_rows(c) == [("u1", "i1", 4.0, 10), ("u2", "i1", 5.0, 11)]
    d = read_log(parquet, user="who", item="what", time="when")
    assert raw_rows(d) == [("x", 7, None, 5), ("y", 8, None, 6)]
    assert d.has_time and not d.has_rating


def test_log_from_frame_id_maps_round_trip():
    frame = pl.DataFrame({"user": ["u3", "u1", "u3", "u2"], "item": [30, 10, 20, 30], "rating": [5, 4, 3, 5],
                          "time": [3, 1, 2, 4]})
    log = log_from_frame(frame)
    assert raw_rows(log) == [("u3", 30, 5.0, 3), ("u1", 10, 4.0, 1), ("u3", 20, 3.0, 2), ("u2", 30, 5.0, 4)]
    assert log.frame["user"].to_list() == [2, 0, 2, 1] and log.frame["item"].to_list() == [2, 0, 1, 2]


def test_import_cli_stores_a_log_and_info_lists_it(home, tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(CSV)
    result = CliRunner().invoke(app, ["data", "import", str(path), "--name", "raw"])
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    assert re.search(r"duplicate rows dropped\s*│\s*1\b", text), text
    assert "diffrec data prepare raw" in text
    assert home.log_names() == ["raw"] and home.names() == []
    listing = json.loads(CliRunner().invoke(app, ["data", "list", "--json"]).stdout)
    assert listing == [{"name": "raw", "kind": "log", "format": "csv", "rows": 6, "users": 3, "items": 3,
                        "duplicates_dropped": 1}]
    info = json.loads(CliRunner().invoke(app, ["data", "info", "raw", "--json"]).stdout)
    assert info["kind"] == "log" and info["rows"] == 6
    loaded = home.load_log("raw")
    assert raw_rows(loaded) == raw_rows(read_log(path))
    assert loaded.user_ids.to_list() == ["alice", "bob", "carol"]
    # the same name again: refused without --force, replaced with it
    fails_cleanly(["data", "import", path, "--name", "raw"], "'raw'", "already exists", "--force", root=home.root)
    assert CliRunner().invoke(app, ["data", "import", str(path), "--name", "raw", "--force"]).exit_code == 0
    result = CliRunner().invoke(app, ["data", "remove", "raw"])
    assert result.exit_code == 0 and "removed raw log 'raw'" in result.stdout
    assert home.log_names() == []


def test_import_split_folder_through_data_import(home, tmp_path):
    folder = tmp_path / "split"
    folder.mkdir()
    for name, rows in (("train", [[0, 0], [0, 1], [1, 1]]), ("valid", [[0, 2]]), ("test", [[1, 0]])):
        np.save(folder / f"{name}_list.npy", np.array(rows, dtype=np.int64))
    result = CliRunner().invoke(app, ["data", "import", str(folder), "--name", "split"])
    assert result.exit_code == 0, result.output
    assert home.names() == ["split"] and home.log_names() == []
    table = home.interactions("split").collect().sort("split", "user", "item")
    assert table.select("user", "item", "split").rows() == [
        (1, 0, "test"), (0, 0, "train"), (0, 1, "train"), (1, 1, "train"), (0, 2, "valid")]
    assert table.filter(pl.col("split") == "train")["position"].to_list() == [0, 1, 0]


# ----- bad input -------------------------------------------------------------------------------------
GOOD = "user,item,rating,time\nu1,i1,5,10\nu2,i2,4,11\n"


@pytest.mark.parametrize("content, extra, words", [
    ("", [], ["is empty"]),
    ("user,item,rating,time\n", [], ["has no rows"]),
    ("who,what\nu1,i1\n", [], ["no user column found", "'who'", "--user"]),
    (GOOD, ["--user", "uid"], [": no column 'uid' for the user ids (columns: 'user', 'item', 'rating', 'time'); "
                               "use --user to name one of these columns"]),
    (GOOD, ["--rating", "stars"], [": no column 'stars' for the ratings (columns: 'user', 'item', 'rating', "
                                   "'time'); use --rating to name one of these columns"]),
    ("user,item,rating,time\nu1,i1,5,10\nu2,i2,great,11\n", [], ["line 3", "rating 'great'", "column 'rating'",
                                                                "not a number"]),
    ("user,item,rating,time\nu1,i1,5,10\nu2,i2,4,soon\n", [], ["line 3", "timestamp 'soon'", "column 'time'"]),
    ("user,item,rating,time\nu1,i1,5,10\n,i2,4,11\n", [], ["line 3", "missing user id", "column 'user'"]),
    ("user,item,rating,time\nu1,,5,10\n", [], ["line 2", "missing item id", "column 'item'"]),
    ("user,item,rating,time\nu1,i1,,10\n", [], ["line 2", "missing rating"]),
    ("user\titem\trating\nu1\ti1\t5\n", [], ["single column", "'\\t'", "--separator"]),
    (GOOD, ["--format", "ml-1m"], ["not a MovieLens ratings.dat", "'::'"]),
    (GOOD, ["--format", "ml-100k"], ["not a MovieLens u.data"]),
    (GOOD, ["--format", "recbole"], ["not a RecBole .inter file", "'user,item,rating,time'"]),
    (GOOD, ["--format", "parquet"], ["not a valid parquet file"]),
    (GOOD, ["--format", "excel"], ["unknown format 'excel'", "csv"]),
    ("1:2::3::4\n", ["--format", "ml-1m"], ["log.csv", "not a MovieLens ratings.dat"]),
])
def test_import_rejects_bad_logs(home, tmp_path, content, extra, words):
    path = tmp_path / "log.csv"
    path.write_text(content)
    home.root.mkdir(parents=True)
    line = fails_cleanly(["data", "import", path, "--name", "bad", *extra], *words, root=home.root)
    assert "log.csv" in line or "unknown format" in line
    assert home.log_names() == [] and home.names() == []


def test_import_rejects_missing_file_unknown_suffix_and_bad_names(home, tmp_path):
    home.root.mkdir(parents=True)
    fails_cleanly(["data", "import", tmp_path / "none.csv", "--name", "x"], "none.csv", "no such file", root=home.root)
    odd = tmp_path / "log.xyz"
    odd.write_text(GOOD)
    fails_cleanly(["data", "import", odd, "--name", "x"], "log.xyz", "cannot tell the format", "--format",
                  root=home.root)
    good = tmp_path / "log.csv"
    good.write_text(GOOD)
    for name in ("a/b", "../up", ".hidden"):
        fails_cleanly(["data", "import", good, "--name", name], "invalid dataset name", root=tmp_path)


def test_a_name_is_either_a_log_or_a_dataset(home, tmp_path, tiny):
    home.save(tiny)
    good = tmp_path / "log.csv"
    good.write_text(GOOD)
    fails_cleanly(["data", "import", good, "--name", "tiny", "--force"], "'tiny'", "already a prepared dataset",
                  root=home.root)
    with pytest.raises(DiffrecError, match="already a prepared dataset"):
        home.save_log(read_log(good), "tiny")
    home.save_log(read_log(good), "raw")
    with pytest.raises(DiffrecError, match="already a raw log"):
        tiny.name = "raw"
        home.save(tiny, force=True)
