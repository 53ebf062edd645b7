"""``diffrec recommend RUN --all-users --out FILE``: every user's top k, streamed to Parquet row groups (or
CSV) batch by batch, renamed into place only when complete; the same rows as recommending user by user."""

from __future__ import annotations

import math
import struct

import numpy as np
import polars as pl
import pytest
import torch

from conftest import home_with_one_run, invoke, make_tiny
from diffrec_cli.plugins import get_plugins
from diffrec_cli.serve import load_served, recommend_for_users, write_all_recommendations


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return home_with_one_run(tmp_path_factory.mktemp("all-users-home"), make_tiny("tiny"))


def parquet_row_groups(path) -> int:
    """The number of row groups in a Parquet file's footer (FileMetaData field 4), read with a minimal
    Thrift compact-protocol reader: the suite has no Parquet library that reports it."""
    raw = path.read_bytes()
    assert raw[-4:] == b"PAR1"
    (length,) = struct.unpack("<i", raw[-8:-4])
    buf, pos = raw[-8 - length:-8], 0

    def varint():
        nonlocal pos
        shift = value = 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def skip(kind):
        nonlocal pos
        if kind in (1, 2):  # booleans live in the field header
            return
        if kind == 3:
            pos += 1
        elif kind in (4, 5, 6):
            varint()
        elif kind == 7:
            pos += 8
        elif kind == 8:
            size = varint()  # read before pos: `pos += varint()` would add to the old pos
            pos += size
        elif kind in (9, 10):
            size, elem = list_header()
            for _ in range(size):
                if elem in (1, 2):  # booleans in a list take a byte each
                    pos += 1
                else:
                    skip(elem)
        elif kind == 12:
            struct_fields(lambda field, k: skip(k))
        else:
            raise AssertionError(f"unexpected thrift type {kind}")

    def list_header():
        nonlocal pos
        head = buf[pos]
        pos += 1
        size = head >> 4
        return (varint() if size == 15 else size), head & 0x0F

    def struct_fields(visit):
        nonlocal pos
        field = 0
        while True:
            head = buf[pos]
            pos += 1
            if head == 0:
                return
            delta, kind = head >> 4, head & 0x0F
            if delta:
                field += delta
            else:
                zigzag = varint()
                field = (zigzag >> 1) ^ -(zigzag & 1)
            visit(field, kind)

    found = []

    def top(field, kind):
        if field == 4:
            size, _ = list_header()
            found.append(size)
            for _ in range(size):
                skip(12)
        else:
            skip(kind)

    struct_fields(top)
    return found[0]


def per_user(home, run, k):
    """Each user recommended alone, in the dataset's user order."""
    served = load_served(run, get_plugins().registry, home=home)
    frames = [recommend_for_users(served.model, served.data, [u], k=k, inputs=served.inputs)
              for u in served.data.user_ids]
    return pl.concat(frames)


def test_all_users_equals_recommending_each_user_alone(tiny_run, tmp_path):
    home, run, env = tiny_run
    out = tmp_path / "recs.parquet"
    result = invoke(["recommend", run, "--all-users", "--out", out, "-k", 25, "--no-live"], env)
    written = pl.read_parquet(out)
    # every user has 8 of the 30 items in some split: 22 unseen items, so 22 rows of the 25 asked for
    assert written.height == 40 * 22
    assert written["rank"].to_list() == list(range(1, 23)) * 40
    alone = per_user(home, run, 25)
    assert written.select("user", "rank", "item").equals(alone.select("user", "rank", "item"))
    # float32 rounding differs with the batch size (40 users at once against one)
    assert np.allclose(written["score"].to_numpy(), alone["score"].to_numpy(), rtol=1e-5, atol=1e-6)
    assert "wrote 880 rows for 40 users to" in result.stdout
    assert "recommended for 40/40 users" in result.stdout


def test_all_users_as_csv_equals_the_users_file_path(tiny_run, tmp_path):
    home, run, env = tiny_run
    users = tmp_path / "users.txt"
    users.write_text("\n".join(f"u{i}" for i in range(40)) + "\n")
    invoke(["recommend", run, "--all-users", "--out", tmp_path / "all.csv", "-k", 5, "--no-live"], env)
    invoke(["recommend", run, "--users-file", users, "--out", tmp_path / "listed.csv", "-k", 5], env)
    assert (tmp_path / "all.csv").read_text() == (tmp_path / "listed.csv").read_text()


def test_small_row_groups_give_several_row_groups(tiny_run, tmp_path):
    home, run, _ = tiny_run
    served = load_served(run, get_plugins().registry, home=home)
    out = tmp_path / "recs.parquet"
    batches = []
    rows = write_all_recommendations(served.model, served.data, out, 5, inputs=served.inputs, batch_size=8,
                                     row_group_size=30, on_batch=batches.append)
    assert rows == 200 and batches == [8] * 5
    assert parquet_row_groups(out) == math.ceil(200 / 30)
    one = tmp_path / "one.parquet"
    write_all_recommendations(served.model, served.data, one, 5, inputs=served.inputs, batch_size=8)
    assert parquet_row_groups(one) == 1
    assert pl.read_parquet(out).equals(pl.read_parquet(one))


class FailsAfter(torch.nn.Module):
    """A model whose scoring fails on its second batch, as a killed or crashing run would stop."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def scores(self, users, x):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("scoring failed")
        return self.model.scores(users, x)


def test_a_failure_midway_leaves_no_file_under_the_final_name(tiny_run, tmp_path):
    home, run, _ = tiny_run
    served = load_served(run, get_plugins().registry, home=home)
    out = tmp_path / "recs.parquet"
    out.write_bytes(b"the previous file")
    with pytest.raises(RuntimeError, match="scoring failed"):
        write_all_recommendations(FailsAfter(served.model), served.data, out, 5, inputs=served.inputs,
                                  batch_size=8)
    assert out.read_bytes() == b"the previous file"
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]


@pytest.mark.parametrize("extra, line", [
    (["-u", "u1"], "error: --all-users recommends for every user; leave out --user and --users-file"),
    ([], "error: --all-users needs --out FILE.parquet (or .csv)"),
    (["--out", "recs.txt"], "error: --all-users needs --out FILE.parquet (or .csv), got 'recs.txt'"),
    (["--out", "-"], "error: --all-users needs --out FILE.parquet (or .csv), got '-'"),
    (["--json"], "error: --all-users writes a file; leave out --json"),
    (["--out", "r.parquet", "--skip-unknown"],
     "error: --all-users recommends for the dataset's own users; leave out --skip-unknown and --cold-start"),
])
def test_all_users_bad_options_are_one_line_exit_2(tiny_run, extra, line):
    _, run, env = tiny_run
    result = invoke(["recommend", run, "--all-users", *extra], env, code=2)
    assert result.stderr.strip() == line
    assert result.stdout == ""
