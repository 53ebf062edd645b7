"""MetricAccumulator against rankings worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from diffrec_cli.training.evaluate import MetricAccumulator

L3 = 1 / math.log2(3)  # discount at rank 2
L4 = 1 / math.log2(4)  # rank 3 (= 0.5)
L5 = 1 / math.log2(5)  # rank 4


def _scores_for_ranking(ranking: list[int], n: int) -> list[float]:
    """Scores that rank ``ranking`` first-to-last (distinct, so no ties)."""
    s = [0.0] * n
    for pos, item in enumerate(ranking):
        s[item] = float(n - pos)
    return s


def _truth(items: list[int], n: int) -> list[bool]:
    return [i in items for i in range(n)]


# Six items. Users:
#  A ranks 0,1,2,3,4,5, relevant {1, 3}
#  B ranks 5,0,1,2,3,4, relevant {0, 2, 4, 5}  (more relevant items than K = 1 and K = 3)
#  C has no ground truth (excluded from every average)
#  D ranks 0,1,2,3,4,5, relevant {5}: no hit in the top 5
N = 6
USERS = {
    "A": ([0, 1, 2, 3, 4, 5], [1, 3]),
    "B": ([5, 0, 1, 2, 3, 4], [0, 2, 4, 5]),
    "C": ([3, 2, 1, 0, 5, 4], []),
    "D": ([0, 1, 2, 3, 4, 5], [5]),
}

PER_USER = {  # metric@K per user, by hand
    "A": {
        1: dict(recall=0, precision=0, ndcg=0, mrr=0, hit=0),
        3: dict(recall=1 / 2, precision=1 / 3, ndcg=L3 / (1 + L3), mrr=1 / 2, hit=1),
        5: dict(recall=1, precision=2 / 5, ndcg=(L3 + L5) / (1 + L3), mrr=1 / 2, hit=1),
    },
    "B": {
        1: dict(recall=1 / 4, precision=1, ndcg=1, mrr=1, hit=1),
        # idcg uses min(|gt|, K) = 3 ideal hits
        3: dict(recall=2 / 4, precision=2 / 3, ndcg=(1 + L3) / (1 + L3 + L4), mrr=1, hit=1),
        5: dict(recall=3 / 4, precision=3 / 5, ndcg=(1 + L3 + L5) / (1 + L3 + L4 + L5), mrr=1, hit=1),
    },
    "D": {k: dict(recall=0, precision=0, ndcg=0, mrr=0, hit=0) for k in (1, 3, 5)},
}


def _batch(names):
    scores = torch.tensor([_scores_for_ranking(USERS[u][0], N) for u in names])
    truth = torch.tensor([_truth(USERS[u][1], N) for u in names])
    return scores, truth


def _expected(names=("A", "B", "D")) -> dict[str, float]:
    out = {}
    for k in (1, 3, 5):
        for m in ("recall", "precision", "ndcg", "mrr", "hit"):
            out[f"{m}@{k}"] = sum(PER_USER[u][k][m] for u in names) / len(names)
    return out


def test_hand_worked_rankings_single_batch():
    acc = MetricAccumulator(ks=(5, 1, 3))
    acc.add(*_batch(["A", "B", "C", "D"]))
    res = acc.result()
    assert res["users"] == 3  # C has no ground truth
    expected = _expected()
    assert set(res) == set(expected) | {"users"}
    for name, value in expected.items():
        assert res[name] == pytest.approx(value, abs=1e-12), name


def test_per_user_values():
    for user in ("A", "B", "D"):
        acc = MetricAccumulator(ks=(1, 3, 5))
        acc.add(*_batch([user]))
        res = acc.result()
        assert res["users"] == 1
        for k in (1, 3, 5):
            for m, value in PER_USER[user][k].items():
                assert res[f"{m}@{k}"] == pytest.approx(value, abs=1e-12), (user, m, k)


def test_batches_accumulate_like_one_batch():
    acc = MetricAccumulator(ks=(1, 3, 5))
    acc.add(*_batch(["C", "A"]))
    acc.add(*_batch(["C"]))  # a batch without any ground truth changes nothing
    acc.add(*_batch(["D", "B"]))
    res = acc.result()
    assert res["users"] == 3
    for name, value in _expected().items():
        assert res[name] == pytest.approx(value, abs=1e-12), name


def test_no_ground_truth_at_all_gives_zeros():
    acc = MetricAccumulator(ks=(1, 3))
    acc.add(*_batch(["C", "C"]))
    res = acc.result()
    assert res["users"] == 0
    assert all(v == 0.0 for k, v in res.items() if k != "users")


def test_masked_items_are_never_hits():
    # Evaluation passes seen items at −inf: with the two best items masked, user A's relevant item 1
    # moves out of the top 1 and item 3 becomes the first hit at rank 2 (ranking 2, 3, 4, 5).
    scores, truth = _batch(["A"])
    scores[0, 0] = -math.inf
    scores[0, 1] = -math.inf
    acc = MetricAccumulator(ks=(1, 2))
    acc.add(scores, truth)
    res = acc.result()
    assert res["hit@1"] == 0.0
    assert res["mrr@2"] == pytest.approx(0.5)
    assert res["recall@2"] == pytest.approx(0.5)
    assert res["ndcg@2"] == pytest.approx(L3 / (1 + L3))
