"""evaluate(): masking of seen items, one scoring pass per batch, users without ground truth skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffrec_cli.data.sparse import InteractionData, csr_from_pairs, dense_rows
from diffrec_cli.training.evaluate import evaluate

N_ITEMS = 12
# user: (train, valid, test)
LAYOUT = {
    0: ([0, 1, 2], [3, 4], [5]),
    1: ([6, 7], [8], [9, 10]),
    2: ([1, 3, 5, 7], [9], [11]),
    3: ([2, 4], [], []),          # no ground truth anywhere: never scored
    4: ([0, 11], [10, 2], [6]),
    5: ([3], [4], []),            # valid only
    6: ([8, 9], [], [0, 1]),      # test only
}


def _data() -> InteractionData:
    parts = {"train": ([], []), "valid": ([], []), "test": ([], [])}
    for u, splits in LAYOUT.items():
        for name, items in zip(parts, splits):
            parts[name][0].extend([u] * len(items))
            parts[name][1].extend(items)
    shape = (len(LAYOUT), N_ITEMS)
    mats = {name: csr_from_pairs(np.array(us, dtype=np.int64), np.array(its, dtype=np.int64), shape)
            for name, (us, its) in parts.items()}
    return InteractionData(name="eval", **mats, user_ids=np.arange(len(LAYOUT)), item_ids=np.arange(N_ITEMS))


def _adversarial(data: InteractionData, calls: list):
    """Training items score highest, then validation items, then test items, then everything else."""

    def score(users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        calls.append((users.clone(), x.clone()))
        rows = users.numpy()
        tie_break = -0.001 * torch.arange(N_ITEMS, dtype=torch.float32)
        return (3 * dense_rows(data.train, rows) + 2 * dense_rows(data.valid, rows)
                + 1 * dense_rows(data.test, rows) + tie_break)

    return score


def test_seen_items_are_masked_per_split():
    data = _data()
    calls: list = []
    res = evaluate(_adversarial(data, calls), data, ks=(1, 2, 5), batch_size=3)
    # validation masks train, so the validation items rank first; test masks train + valid, so test items do
    for split in ("valid", "test"):
        m = res[split]
        assert m["users"] == 5
        assert m["precision@1"] == pytest.approx(1.0), split
        assert m["ndcg@1"] == pytest.approx(1.0), split
        assert m["recall@2"] == pytest.approx(1.0), split
        assert m["ndcg@5"] == pytest.approx(1.0), split
        assert m["mrr@5"] == pytest.approx(1.0), split
        # precision@2: users with a single ground-truth item hit 1 of 2
        n_gt = [len(LAYOUT[u][1 if split == "valid" else 2]) for u in LAYOUT]
        expected_p2 = np.mean([min(n, 2) / 2 for n in n_gt if n > 0])
        assert m["precision@2"] == pytest.approx(expected_p2)


def test_test_split_alone_still_masks_validation_items():
    data = _data()
    res = evaluate(_adversarial(data, []), data, splits=("test",), ks=(1,))
    assert set(res) == {"test"}
    assert res["test"]["users"] == 5
    assert res["test"]["hit@1"] == pytest.approx(1.0)


def test_validation_does_not_mask_test_items():
    # Test items are not "seen" when validating: a model that puts them first loses on the valid split.
    data = _data()

    def test_first(users, x):
        rows = users.numpy()
        return 3 * dense_rows(data.test, rows) + 1 * dense_rows(data.valid, rows)

    res = evaluate(test_first, data, ks=(1,))
    # valid users 0, 1, 2, 4 have a test item on top → miss; user 5 has no test item → hit: 1/5
    assert res["valid"]["hit@1"] == pytest.approx(1 / 5)
    assert res["test"]["hit@1"] == pytest.approx(1.0)


def test_scores_computed_once_per_batch_for_both_splits():
    data = _data()
    calls: list = []
    evaluate(_adversarial(data, calls), data, ks=(1, 5), batch_size=2)
    # users with ground truth in valid or test: 0, 1, 2, 4, 5, 6 → three batches of two
    assert len(calls) == 3
    scored = torch.cat([u for u, _ in calls]).tolist()
    assert scored == [0, 1, 2, 4, 5, 6]
    assert 3 not in scored
    # the model's input is the users' training rows
    for users, x in calls:
        torch.testing.assert_close(x, dense_rows(data.train, users.numpy()))


def test_input_matrix_replaces_the_model_input_but_not_the_mask():
    data = _data()
    weighted = data.train.copy()
    weighted.data = weighted.data * 0.25
    calls: list = []
    res = evaluate(_adversarial(data, calls), data, ks=(1,), input_matrix=weighted, batch_size=100)
    assert len(calls) == 1
    users, x = calls[0]
    torch.testing.assert_close(x, dense_rows(weighted, users.numpy()))
    assert res["valid"]["hit@1"] == pytest.approx(1.0)


def test_users_without_ground_truth_do_not_count():
    data = _data()

    def constant(users, x):
        return torch.linspace(1, 0, N_ITEMS).roll(3).expand(len(users), N_ITEMS).clone()

    res = evaluate(constant, data, splits=("valid",), ks=(1,))
    # ranking: items 3, 4, 5, ..., 11, 0, 1, 2. Top unseen item per validation user:
    # u0 (train 0,1,2): 3 ∈ {3,4} → hit; u1: 3 ∉ {8}; u2 (train has 3): 4 ∉ {9}; u4: 3 ∉ {10,2};
    # u5 (train 3): 4 ∈ {4} → hit. Mean over the 5 users with validation items (not all 7): 2/5.
    assert res["valid"]["users"] == 5
    assert res["valid"]["hit@1"] == pytest.approx(2 / 5)


def test_scores_a_model_keeps_are_masked_in_a_copy_and_left_as_they_were():
    """The test ranking masks the validation ranking's tensor further in place: that tensor must be a
    copy, never the one the model handed back (here a broadcast view of one row it keeps)."""
    data = _data()
    kept = -torch.arange(N_ITEMS, dtype=torch.float32)  # item 0 first, then 1, ...
    before = kept.clone()
    shared = evaluate(lambda users, x: kept.expand(len(users), -1), data, ks=(1, 2, 5), batch_size=3)
    assert torch.equal(kept, before)
    fresh = evaluate(lambda users, x: kept.repeat(len(users), 1), data, ks=(1, 2, 5), batch_size=3)
    assert shared == fresh
    # user 0 (train 0, 1, 2): validation ranks 3 first (a hit); test masks 3 and 4 too, ranks 5 first (a hit)
    alone = InteractionData(name="one", train=data.train[:1], valid=data.valid[:1], test=data.test[:1],
                            user_ids=np.arange(1), item_ids=np.arange(N_ITEMS))
    one = evaluate(lambda users, x: kept.expand(len(users), -1), alone, ks=(1,))
    assert one["valid"]["hit@1"] == 1.0 and one["test"]["hit@1"] == 1.0
