"""Per-user evaluation and ``diffrec compare``: vectors behind the means, paired tests, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch
from typer.testing import CliRunner

from conftest import FAST_MODEL, FAST_TRAIN, make_tiny
from diffrec_cli.cli.app import app
from diffrec_cli.comparison import parse_metric
from diffrec_cli.errors import DiffrecError
from diffrec_cli.runs import read_runs
from diffrec_cli.training.evaluate import evaluate, evaluate_per_user


def _random_scores(seed):
    generator = torch.Generator().manual_seed(seed)
    return lambda users, x: torch.rand(len(users), x.shape[1], generator=generator)


def test_per_user_vectors_average_to_evaluate():
    data = make_tiny()
    for split in ("valid", "test"):
        expected = evaluate(_random_scores(1), data, splits=(split,), ks=(5, 10))[split]
        users, values = evaluate_per_user(_random_scores(1), data, split=split, ks=(5, 10), batch_size=7)
        np.testing.assert_array_equal(users, np.arange(data.n_users))  # every tiny user has truth in both
        assert set(values) == {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "mrr", "hit") for k in (5, 10)}
        for name, vector in values.items():
            assert vector.shape == (data.n_users,)
            assert vector.mean() == pytest.approx(expected[name], rel=1e-12, abs=1e-15)


def test_per_user_recall_by_hand():
    data = make_tiny()
    # scores = item index: the top-5 unseen items are the highest-numbered ones the user has not seen
    users, values = evaluate_per_user(lambda u, x: torch.arange(x.shape[1]).float().expand(len(u), -1), data,
                                      split="test", ks=(5,))
    train, valid, test = (m.toarray() for m in (data.train, data.valid, data.test))
    for u in users[:6]:
        unseen = [i for i in range(data.n_items - 1, -1, -1) if not (train[u, i] or valid[u, i])][:5]
        relevant = set(np.flatnonzero(test[u]))
        assert values["recall@5"][u] == len(relevant & set(unseen)) / len(relevant)


@pytest.mark.parametrize("metric,expected", [("recall@20", ("recall", 20)), ("ndcg@5", ("ndcg", 5))])
def test_parse_metric(metric, expected):
    assert parse_metric(metric) == expected


@pytest.mark.parametrize("metric", ["recall", "recall@", "recall@0", "auc@10", "ndcg@x"])
def test_parse_metric_rejects(metric):
    with pytest.raises(DiffrecError, match="metric must look like recall@20"):
        parse_metric(metric)


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def two_runs(tiny_home):
    sets = [arg for k, v in {**FAST_MODEL, **FAST_TRAIN}.items() for arg in ("--set", f"{k}={v}")]
    for seed in (1, 2):
        result = _cli("train", "--dataset", "tiny", "--quiet", "--no-live", "--seed", seed, *sets)
        assert result.exit_code == 0, result.output
    return tiny_home, [r.id for r in read_runs(tiny_home.runs_dir)]


def test_compare_json_matches_scipy_on_the_runs_vectors(two_runs):
    home, (first, second) = two_runs
    result = _cli("compare", first, second, "--metric", "ndcg@10", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["metric"], out["split"], out["dataset"], out["users"]) == ("ndcg@10", "test", "tiny", 40)
    finals = {r.id: r.final for r in read_runs(home.runs_dir)}
    for run in out["runs"]:
        assert run["mean"] == pytest.approx(finals[run["run"]]["test"]["ndcg@10"], abs=1e-6)
    (pair,) = out["pairs"]
    assert (pair["a"], pair["b"]) == (first, second)
    assert pair["mean_diff"] == pytest.approx(out["runs"][1]["mean"] - out["runs"][0]["mean"], abs=1e-12)
    assert pair["t_p_holm"] == pair["t_p"]  # one pair: Holm changes nothing
    from diffrec_cli.comparison import run_vector
    from diffrec_cli.plugins import get_registry

    (va, _), (vb, _) = (run_vector(r, get_registry(), home, "ndcg@10", "test") for r in (first, second))
    t, w = scipy.stats.ttest_rel(vb.values, va.values), scipy.stats.wilcoxon(vb.values, va.values)
    assert (pair["t_statistic"], pair["t_p"]) == pytest.approx((t.statistic, t.pvalue), rel=1e-9)
    assert (pair["wilcoxon_statistic"], pair["wilcoxon_p"]) == pytest.approx((w.statistic, w.pvalue), rel=1e-9)


def test_compare_table(two_runs):
    _, runs = two_runs
    result = _cli("compare", *runs, "--split", "valid")
    assert result.exit_code == 0, result.output
    assert "tiny, valid: 40 users" in result.stdout and "Wilcoxon p" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["ONLY"], "error: compare needs at least two runs"),
    (["A", "A"], "error: a run is given twice"),
    (["A", "B", "--metric", "auc@10"], "error: the metric must look like recall@20"),
    (["A", "B", "--split", "train"], "error: the split must be valid or test, got 'train'"),
    (["A", "nope-such-run"], "error: no run or checkpoint"),
])
def test_bad_input_is_one_error_line_and_exit_2(two_runs, args, message):
    _, runs = two_runs
    names = {"ONLY": runs[0], "A": runs[0], "B": runs[1]}
    result = _cli("compare", *[names.get(a, a) for a in args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_runs_on_different_datasets_are_refused(two_runs, tiny_home):
    other = make_tiny(name="other", seed=5)
    tiny_home.save(other)
    sets = [arg for k, v in {**FAST_MODEL, **FAST_TRAIN}.items() for arg in ("--set", f"{k}={v}")]
    assert _cli("train", "--dataset", "other", "--quiet", "--no-live", *sets).exit_code == 0
    runs = [r.id for r in read_runs(tiny_home.runs_dir)]
    result = _cli("compare", *runs)
    assert result.exit_code == 2 and "different datasets" in result.output
