"""The one string-to-type converter, the one JSON shaper and the one TOML reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from diffrec_cli.atomic import jsonable
from diffrec_cli.config import flat_settings, load_toml, read_toml, resolve_settings
from diffrec_cli.convert import coerce
from diffrec_cli.data.recipes import make_recipe
from diffrec_cli.errors import DiffrecError


@pytest.mark.parametrize("value, default, expected", [
    ("10", 5, 10),
    (" -3 ", 5, -3),
    ("0.25", 1.0, 0.25),
    ("3", 1.0, 3.0),
    ("1e-4", 0.1, 1e-4),
    (".5", 0.1, 0.5),
    ("true", False, True), ("Off", True, False), ("yes", False, True), ("0", True, False),
    ("[200, 600]", (1,), (200, 600)),
    ("200,600", (1,), (200, 600)),
    ("7:2:1", (0.7, 0.2, 0.1), (7.0, 2.0, 1.0)),
    ("0.8, 0.1 ,0.1", (0.7, 0.2, 0.1), (0.8, 0.1, 0.1)),
    ("5", (10, 20), (5,)),
    ("a,b", (), ("a", "b")),
    ("[1, 2]", [3], [1, 2]),
    ('{"a": 1}', {}, {"a": 1}),
    ("cpu", "auto", "cpu"),
    ("anything", None, "anything"),
])
def test_text_is_read_as_the_type_of_the_default(value, default, expected):
    got = coerce(value, default)
    assert got == expected and type(got) is type(expected)
    if isinstance(expected, tuple):
        assert [type(v) for v in got] == [type(v) for v in expected]


@pytest.mark.parametrize("value, default, expected", [
    (3, 1.0, 3.0),
    (1, False, True),
    ([7, 2, 1], (0.7, 0.2, 0.1), (7.0, 2.0, 1.0)),
    ([300], (200, 600), (300,)),
    ((1, 2), [0], [1, 2]),
    (1.5, 2, 1.5),  # a non-text value keeps its type (TOML files and checkpoints hold typed values)
    (None, 2, None),
])
def test_values_that_are_not_text_are_only_aligned(value, default, expected):
    got = coerce(value, default)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value, default, message", [
    ("ten", 5, "cannot read 'ten' as int"),
    ("1.5", 5, "cannot read '1.5' as int"),
    ("fast", 0.1, "cannot read 'fast' as float"),
    ("maybe", True, "cannot read 'maybe' as true/false"),
    ("0.7,x", (0.7, 0.2, 0.1), "cannot read 'x' as float"),
    ("[1, 2", (1,), "cannot read '[1, 2' as a list like 1"),
    ("[1, 2]", {}, None),  # JSON that parses is taken as it is
    (2, True, "expected true/false, got 2"),
])
def test_text_that_does_not_fit_is_a_user_error(value, default, message):
    if message is None:
        assert coerce(value, default) == [1, 2]
        return
    with pytest.raises(DiffrecError) as info:
        coerce(value, default)
    assert str(info.value) == message


def test_training_and_recipe_settings_use_the_same_converter():
    train = resolve_settings({}, {"ks": "5,20", "callbacks": "a,b", "lr": "1", "epochs": "3"}).train
    assert (train.ks, train.callbacks, train.lr, train.epochs) == ((5, 20), ("a", "b"), 1.0, 3)
    with pytest.raises(DiffrecError) as info:
        resolve_settings({}, {"epochs": "1.5"})
    assert str(info.value) == "setting epochs: cannot read '1.5' as int"
    recipe = make_recipe("noisy-random", {"ratios": "6:2:2", "min_user": "5", "proportion": "0.2"})
    assert (recipe.ratios, recipe.min_user, recipe.proportion) == ((6.0, 2.0, 2.0), 5, 0.2)
    with pytest.raises(DiffrecError) as info:
        make_recipe("clean", {"min_rating": "high"})
    assert str(info.value) == "recipe clean setting min_rating: cannot read 'high' as float"


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_jsonable_gives_what_a_json_file_gives_back():
    value = {"dims": (200, (1, 2)), "n": np.int64(3), "x": np.float32(0.5), "a": np.array([1, 2]),
             "p": Path("/tmp/x"), 4: "key", "o": _Opaque(), "s": {2}, "nan": float("nan")}
    out = jsonable(value)
    nan = out.pop("nan")
    assert math.isnan(nan)
    assert out == {"dims": [200, [1, 2]], "n": 3, "x": 0.5, "a": [1, 2], "p": "/tmp/x", "4": "key",
                   "o": "opaque", "s": [2]}
    assert type(out["n"]) is int


def test_toml_has_one_reader(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "tiny"\n[train]\nlr = 0.01\n[model]\ndims = [8]\n[search]\nlr = [1, 2]\n')
    raw = load_toml(path, "search space file")
    assert raw["search"] == {"lr": [1, 2]}
    assert flat_settings(raw) == read_toml(path) == {"dataset": "tiny", "lr": 0.01, "dims": [8]}
    with pytest.raises(DiffrecError) as info:
        load_toml(tmp_path / "none.toml", "search space file")
    assert str(info.value) == f"search space file {tmp_path / 'none.toml'} not found"
    (tmp_path / "bad.toml").write_text("lr = = 1\n")
    with pytest.raises(DiffrecError, match=r"^config file .*bad.toml is not valid TOML: "):
        read_toml(tmp_path / "bad.toml")
