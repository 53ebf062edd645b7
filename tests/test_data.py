"""Data: the split-folder importer, the data home, the demo dataset, dense_rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from conftest import make_tiny
from diffrec_cli.data.demo import build_demo
from diffrec_cli.data.ingest import import_split_folder
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs, dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError

# Train rows are chronological within each user; users interleave; user 0 repeats item 2 (dropped).
TRAIN = [[1, 1], [0, 2], [0, 0], [1, 4], [0, 2], [0, 3], [2, 0]]
VALID = [[0, 1], [1, 0], [1, 0]]
TEST = [[0, 4], [2, 3]]


def write_split(folder, train=TRAIN, valid=VALID, test=TEST):
    folder.mkdir(parents=True, exist_ok=True)
    for fname, rows in (("train_list.npy", train), ("valid_list.npy", valid), ("test_list.npy", test)):
        np.save(folder / fname, np.asarray(rows, dtype=np.int64))
    return folder


def test_import_split_folder_counts_and_dense_shape(tmp_path):
    data = import_split_folder(write_split(tmp_path / "split"), "mini")
    assert data.name == "mini"
    assert (data.n_users, data.n_items) == (3, 5)
    c = data.counts()
    assert (c["train"], c["valid"], c["test"], c["interactions"]) == (6, 1 + 1, 2, 10)
    assert c["density"] == pytest.approx(10 / 15)
    np.testing.assert_array_equal(data.train.toarray(), [
        [1, 0, 1, 1, 0],
        [0, 1, 0, 0, 1],
        [1, 0, 0, 0, 0],
    ])
    np.testing.assert_array_equal(data.valid.toarray(), [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(data.test.toarray(), [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 1, 0]])
    assert data.meta["duplicates_dropped"] == {"train": 1, "valid": 1, "test": 0}
    assert data.user_ids.tolist() == [0, 1, 2] and data.item_ids.tolist() == [0, 1, 2, 3, 4]
    assert data.item_emb is None


def test_import_split_folder_train_order_is_chronological_position(tmp_path):
    data = import_split_folder(write_split(tmp_path / "split"), "mini")
    order = np.asarray(data.train_order)
    assert len(order) == data.train.nnz
    # aligned with train.data in CSR order (items sorted within each user):
    # user 0 saw 2, 0, (2 again), 3 → positions 2:0, 0:1, 3:2 ; user 1 saw 1, 4 ; user 2 saw 0
    per_entry = {}
    for u in range(data.n_users):
        lo, hi = data.train.indptr[u], data.train.indptr[u + 1]
        for item, pos in zip(data.train.indices[lo:hi], order[lo:hi]):
            per_entry[(u, int(item))] = int(pos)
    assert per_entry == {(0, 0): 1, (0, 2): 0, (0, 3): 2, (1, 1): 0, (1, 4): 1, (2, 0): 0}
    # every user's positions are 0..len−1 (a dropped duplicate leaves no gap)
    lengths = np.diff(data.train.indptr)
    for u in range(data.n_users):
        lo, hi = data.train.indptr[u], data.train.indptr[u + 1]
        assert sorted(order[lo:hi].tolist()) == list(range(lengths[u]))


def test_import_split_folder_reads_item_embeddings(tmp_path):
    folder = write_split(tmp_path / "split")
    emb = np.arange(15, dtype=np.float32).reshape(5, 3)
    np.save(folder / "item_emb.npy", emb)
    data = import_split_folder(folder, "mini")
    np.testing.assert_array_equal(data.item_emb, emb)
    np.save(folder / "item_emb.npy", emb[:4])
    with pytest.raises(DiffrecError, match="item_emb"):
        import_split_folder(folder, "mini")


def _assert_same_data(a: InteractionData, b: InteractionData) -> None:
    for s in ("train", "valid", "test"):
        ma, mb = a.split(s), b.split(s)
        assert ma.shape == mb.shape
        for attr in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(ma, attr), getattr(mb, attr), err_msg=f"{s}.{attr}")
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    assert a.fingerprint() == b.fingerprint()


def test_data_home_round_trip(tmp_path):
    home = DataHome(tmp_path / "home")
    assert home.names() == []
    original = import_split_folder(write_split(tmp_path / "split"), "mini")
    original.item_emb = np.ones((5, 2), dtype=np.float32)
    home.save(original)
    tiny = make_tiny()
    home.save(tiny)
    assert home.names() == ["mini", "tiny"]
    loaded = home.load("mini")
    _assert_same_data(original, loaded)
    np.testing.assert_array_equal(loaded.train_order, original.train_order)
    np.testing.assert_array_equal(loaded.item_emb, original.item_emb)
    assert loaded.meta["fingerprint"] == original.fingerprint()
    assert loaded.meta["counts"] == original.counts()
    assert loaded.meta["duplicates_dropped"] == {"train": 1, "valid": 1, "test": 0}
    loaded_tiny = home.load("tiny")
    _assert_same_data(tiny, loaded_tiny)
    assert loaded_tiny.train_order is None
    assert loaded_tiny.user_ids.tolist() == [f"u{i}" for i in range(40)]
    assert loaded_tiny.user_index("u7") == 7
    with pytest.raises(DiffrecError, match="unknown user"):
        loaded_tiny.user_index("u40")
    # nothing but the two dataset folders (no temp folders) in the datasets dir
    assert sorted(p.name for p in home.datasets_dir.iterdir()) == ["mini", "tiny"]


def test_data_home_refuses_overwrite_unless_forced_and_removes(tmp_path):
    home = DataHome(tmp_path / "home")
    home.save(make_tiny())
    first = home.load("tiny").fingerprint()
    with pytest.raises(DiffrecError, match="already exists"):
        home.save(make_tiny(seed=5))
    assert home.load("tiny").fingerprint() == first
    home.save(make_tiny(seed=5), force=True)
    assert home.load("tiny").fingerprint() == make_tiny(seed=5).fingerprint() != first
    home.remove("tiny")
    assert home.names() == []
    assert not home.exists("tiny")
    with pytest.raises(DiffrecError, match="unknown dataset"):
        home.load("tiny")
    with pytest.raises(DiffrecError, match="no dataset"):
        home.remove("tiny")
    assert list(home.datasets_dir.iterdir()) == []


def test_data_home_refuses_empty_split_and_bad_names(tmp_path):
    home = DataHome(tmp_path / "home")
    tiny = make_tiny()
    tiny.test = sp.csr_matrix(tiny.test.shape, dtype=np.float32)
    with pytest.raises(DiffrecError, match="test split is empty"):
        home.save(tiny)
    for bad in ("a/b", "../x", "", ".hidden", "x" * 101):
        with pytest.raises(DiffrecError, match="invalid dataset name"):
            home.dataset_dir(bad)
    assert not home.datasets_dir.exists() or list(home.datasets_dir.iterdir()) == []


def test_demo_dataset_is_deterministic(tmp_path):
    a, b = build_demo(), build_demo()
    assert a.fingerprint() == b.fingerprint()
    _assert_same_data(a, b)
    np.testing.assert_array_equal(a.train_order, b.train_order)
    c = a.counts()
    assert c["users"] > 500 and c["items"] > 500 and c["train"] > c["valid"] > c["test"] > 0
    # valid/test items all appear in training (the clean protocol drops the rest)
    train_items = np.unique(a.train.indices)
    assert np.isin(a.valid.indices, train_items).all() and np.isin(a.test.indices, train_items).all()
    # the lazily built copy in a data home is the same dataset
    home = DataHome(tmp_path / "home")
    assert home.load("demo").fingerprint() == a.fingerprint()
    assert json.loads((home.dataset_dir("demo") / "meta.json").read_text())["fingerprint"] == a.fingerprint()


def test_fingerprint_changes_with_content():
    a = make_tiny()
    b = make_tiny()
    assert a.fingerprint() == b.fingerprint()
    b.test = b.test.copy()
    b.test.indices[0] = (b.test.indices[0] + 1) % b.n_items
    assert a.fingerprint() != b.fingerprint()


def test_csr_from_pairs_keeps_first_value_of_a_repeated_pair():
    m = csr_from_pairs(np.array([0, 1, 0, 0]), np.array([2, 0, 2, 1]), (2, 3), values=np.array([5, 6, 7, 8]))
    np.testing.assert_array_equal(m.toarray(), [[0, 8, 5], [6, 0, 0]])


def test_dense_rows_equals_scipy_densify():
    rng = np.random.default_rng(0)
    m = sp.random(30, 17, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    m.data[:] = rng.uniform(0.5, 3.0, m.nnz).astype(np.float32)
    m = sp.csr_matrix(m)
    row_of = np.repeat(np.arange(30), np.diff(m.indptr))
    m.data[np.isin(row_of, [4, 9])] = 0  # some empty rows
    m.eliminate_zeros()
    assert np.diff(m.indptr)[4] == 0
    rows = np.array([3, 0, 4, 3, 29, 9, 12])
    got = dense_rows(m, rows)
    assert got.dtype == torch.float32 and got.shape == (7, 17)
    np.testing.assert_array_equal(got.numpy(), m[rows].toarray())
    np.testing.assert_array_equal(dense_rows(m, np.array([4, 9])).numpy(), np.zeros((2, 17)))
    assert dense_rows(m, np.array([], dtype=np.int64)).shape == (0, 17)
    np.testing.assert_array_equal(dense_rows(m, rows, dtype=torch.float64).numpy(), m[rows].toarray().astype(np.float64))


def _with_ids(data: InteractionData, users, items) -> InteractionData:
    return InteractionData(name=data.name, train=data.train, valid=data.valid, test=data.test,
                           user_ids=np.asarray(users), item_ids=np.asarray(items))


def test_raw_ids_come_back_from_splits_npz_with_their_kind(tmp_path):
    home = DataHome(tmp_path / "home")
    tiny = make_tiny()
    users = np.array([f"{i:05d}" for i in range(tiny.n_users)], dtype=object)  # text that reads as numbers
    items = np.arange(100, 100 + tiny.n_items, dtype=np.int64)
    home.save(_with_ids(tiny, users, items))
    with np.load(home.dataset_dir("tiny") / "splits.npz") as z:
        assert z["user_ids"].tolist() == users.tolist() and z["user_ids"].dtype.kind == "U"
        assert z["item_ids"].tolist() == items.tolist() and z["item_ids"].dtype == np.int64
    loaded = home.load("tiny")
    assert loaded.user_ids.tolist() == users.tolist()  # "00007" stays text, not 7
    assert loaded.user_index("00007") == 7
    assert loaded.item_ids.dtype == np.int64 and loaded.item_ids.tolist() == items.tolist()


def test_dataset_prepared_without_ids_in_splits_npz_reads_them_from_parquet(tmp_path):
    home = DataHome(tmp_path / "home")
    home.save(make_tiny())
    path = home.dataset_dir("tiny") / "splits.npz"
    with np.load(path) as z:
        older = {k: z[k] for k in z.files if k not in ("user_ids", "item_ids")}
    np.savez(path, **older)
    loaded = home.load("tiny")
    assert loaded.user_ids.tolist() == [f"u{i}" for i in range(40)]
    assert loaded.user_index("u3") == 3


def test_loading_a_dataset_does_not_import_polars(tmp_path):
    import subprocess
    import sys

    home = DataHome(tmp_path / "home")
    home.save(make_tiny())
    code = ("import sys; from diffrec_cli.data.store import DataHome; "
            f"d = DataHome({str(tmp_path / 'home')!r}).load('tiny'); "
            "print(d.n_users, d.user_ids[5], 'polars' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["40", "u5", "False"]


def test_damaged_raw_ids_in_splits_npz_are_a_one_line_error(tmp_path):
    home = DataHome(tmp_path / "home")
    home.save(make_tiny())
    path = home.dataset_dir("tiny") / "splits.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **{**arrays, "user_ids": np.array(7)})
    with pytest.raises(DiffrecError, match=r"^dataset 'tiny': the raw ids in .*splits.npz are damaged$"):
        home.load("tiny")
    np.savez(path, **{**arrays, "user_ids": arrays["user_ids"][:-1]})
    with pytest.raises(DiffrecError, match=r"^dataset 'tiny': split train in splits.npz is damaged \("):
        home.load("tiny")  # one id short: the split no longer fits the id count
