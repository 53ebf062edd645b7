"""The data operations as library calls: import, prepare (and its source), generate, demo; the store's
name checks; the file formats' writers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from diffrec_cli.data.demo import generate_log
from diffrec_cli.data.formats import FORMATS, Table, log_writer, write_log_file
from diffrec_cli.data.ingest import read_log
from diffrec_cli.data.operations import Stored, build_demo_dataset, generate, import_file, open_log, prepare
from diffrec_cli.data.store import is_name
from diffrec_cli.errors import DiffrecError, Hint

# 12 users with 6 items each (ratings 4-5, so the clean recipe keeps everything), times in file order.
LOG = "user,item,rating,time\n" + "".join(f"u{u},i{(u + k) % 9},{4 + k % 2},{100 * u + k}\n"
                                          for u in range(12) for k in range(6))


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    return path


def _split_folder(folder):
    folder.mkdir()
    for split, rows in (("train", [[0, 0], [0, 1], [1, 1]]), ("valid", [[0, 2]]), ("test", [[1, 0]])):
        np.save(folder / f"{split}_list.npy", np.array(rows, dtype=np.int64))
    return folder


def test_import_file_stores_a_log_or_a_dataset(home, log_file, tmp_path):
    stored = import_file(home, log_file, "raw")
    assert stored == Stored("log", "raw", home.log_dir("raw"))
    assert home.log_meta("raw")["rows"] == 72 and home.log_meta("raw")["users"] == 12
    folder = import_file(home, _split_folder(tmp_path / "split"), "split")
    assert folder == Stored("dataset", "split", home.dataset_dir("split"))
    assert home.meta("split")["counts"]["train"] == 3
    renamed = import_file(home, log_file, "named", user="item", item="user")  # columns by name win
    assert home.log_meta(renamed.name)["users"] == 9
    with pytest.raises(DiffrecError) as info:
        import_file(home, log_file, "raw")
    assert info.value.hint == Hint(options=("force",), purpose="replace it")
    assert import_file(home, log_file, "raw", force=True).kind == "log"
    with pytest.raises(DiffrecError, match="invalid dataset name"):
        import_file(home, log_file, "../up")


def test_open_log_reads_a_stored_log_else_a_file(home, log_file, tmp_path):
    import_file(home, log_file, "raw")
    stored = open_log(home, "raw")
    from_file = open_log(home, str(log_file))
    assert stored.frame.drop("row").equals(from_file.frame.drop("row"))
    assert from_file.meta["source"]["path"] == str(log_file.resolve())
    import_file(home, _split_folder(tmp_path / "split"), "split")
    with pytest.raises(DiffrecError) as info:
        open_log(home, "split")
    assert str(info.value) == "'split' is a prepared dataset, not a raw log"
    assert info.value.hint == Hint(step="import", purpose="import a log first")
    with pytest.raises(DiffrecError) as info:
        open_log(home, "nothing")
    assert str(info.value) == f"no log named 'nothing' in {home.logs_dir} and no such file (logs: raw)"


def test_prepare_builds_a_dataset_from_a_stored_log_or_a_file(home, log_file):
    import_file(home, log_file, "raw")
    stored = prepare(home, "raw", "raw-clean", settings={"min_user": "5"})
    assert stored == Stored("dataset", "raw-clean", home.dataset_dir("raw-clean"))
    meta = home.meta("raw-clean")
    assert meta["recipe"]["min_user"] == 5 and meta["source"]["log"] == "raw"
    # all 12 users kept (6 >= min_user); 6 split 7:2:1 by time is 4/1/1 (test and valid keep one each);
    # every valid/test item is in some user's train, so nothing is dropped
    assert [meta["counts"][k] for k in ("users", "train", "valid", "test")] == [12, 48, 12, 12]
    direct = prepare(home, str(log_file), "file-clean", settings={"min_user": "5"})
    assert home.meta(direct.name)["fingerprint"] == meta["fingerprint"]
    with pytest.raises(DiffrecError, match="unknown protocol 'dirty'"):
        prepare(home, "raw", "x", protocol="dirty")
    assert not home.exists("x")


def test_generate_stores_the_log_and_writes_the_file(home, tmp_path):
    out = tmp_path / "gen.parquet"
    stored = generate(home, "gen", users=30, items=40, interactions=400, seed=2, out=out)
    assert stored == Stored("log", "gen", home.log_dir("gen"))
    frame = generate_log(30, 40, 400, seed=2)
    assert pl.read_parquet(out).equals(frame)
    assert home.log_meta("gen")["source"] == {"format": "generated", "users": 30, "items": 40,
                                              "interactions": 400, "seed": 2}
    with pytest.raises(DiffrecError) as info:
        generate(home, "gen2", users=30, items=40, interactions=400, out=tmp_path / "gen.xlsx")
    assert str(info.value) == f"cannot write a log to {tmp_path / 'gen.xlsx'}: the name must end in .csv, .tsv or .parquet"
    assert info.value.hint == Hint(options=("out",), value=str(tmp_path / "gen.csv"))
    assert not home.log_exists("gen2") and not (tmp_path / "gen.xlsx").exists()


def test_the_demo_is_built_once_unless_forced(home, monkeypatch):
    import diffrec_cli.data.demo as demo

    calls = []
    real = demo.build_demo
    monkeypatch.setattr(demo, "build_demo", lambda: calls.append(1) or real())
    assert build_demo_dataset(home) == Stored("dataset", "demo", home.dataset_dir("demo"))
    assert build_demo_dataset(home) is None
    assert build_demo_dataset(home, force=True).name == "demo"
    assert len(calls) == 2


def test_store_describes_and_removes_by_name(home, log_file, tmp_path):
    import_file(home, log_file, "raw")
    import_file(home, _split_folder(tmp_path / "split"), "split")
    assert home.describe("raw")[0] == "log" and home.describe("raw")[1]["rows"] == 72
    assert home.describe("split")[0] == "dataset"
    with pytest.raises(DiffrecError, match="unknown dataset 'none'"):
        home.describe("none")
    with pytest.raises(DiffrecError) as info:
        home.remove_all(["raw", "none"])
    assert str(info.value) == f"no dataset named 'none' in {home.datasets_dir} (nor a raw log in {home.logs_dir})"
    assert home.log_names() == ["raw"]  # nothing removed when one name is unknown
    assert home.remove_all(["split", "raw", "split"]) == [("split", "dataset"), ("raw", "log")]
    assert home.names() == [] and home.log_names() == []
    assert [is_name(t) for t in ("a.b-c_1", "", "a/b", ".x", "x" * 101)] == [True, False, False, False, False]


def test_writers_follow_the_suffix_and_round_trip(tmp_path):
    frame = pl.DataFrame({"user": ["a", "b"], "item": [1, 2], "rating": [5, 3], "time": [10, 11]})
    assert [log_writer(tmp_path / n).name for n in ("x.csv", "x.TSV", "x.tab", "x.parquet", "x.pq")] == [
        "csv", "tsv", "tsv", "parquet", "parquet"]
    for name in ("x.csv", "x.tsv", "x.parquet"):
        write_log_file(frame, tmp_path / name)
        back = read_log(tmp_path / name)
        assert back.user_ids.to_list() == ["a", "b"] and back.frame["rating"].to_list() == [5.0, 3.0]
    assert (tmp_path / "x.tsv").read_text().splitlines()[0] == "user\titem\trating\ttime"
    with pytest.raises(DiffrecError, match="x.dat: the name must end in .csv, .tsv or .parquet"):
        write_log_file(frame, tmp_path / "x.dat")
    assert not hasattr(FORMATS["ml-1m"], "write")


def test_a_table_names_rows_as_a_reader_finds_them():
    frame = pl.LazyFrame({"a": [1]})
    assert Table(frame, ["a"], header_lines=1).where(0) == "line 2"
    assert Table(frame, ["a"], header_lines=0).where(4) == "line 5"
    assert Table(frame, ["a"], header_lines=None).where(4) == "row 5"


def test_recipes_name_the_column_they_need(home, tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("user,item\n" + "".join(f"u{u},i{(u + k) % 9}\n" for u in range(12) for k in range(6)))
    import_file(home, path, "plain")
    for protocol, message in (("temporal", "recipe temporal needs timestamps: "),
                              ("noisy-natural", "recipe noisy-natural needs ratings: ")):
        with pytest.raises(DiffrecError) as info:
            prepare(home, "plain", "x", protocol=protocol, settings={"min_user": "5"})
        assert str(info.value).startswith(message) and str(info.value).endswith(" column")
    assert prepare(home, "plain", "ok", protocol="noisy-random", settings={"min_user": "5"}).kind == "dataset"
