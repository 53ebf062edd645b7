"""Paired tests against scipy's own results and hand-worked numbers; Holm's correction by hand."""

import math

import numpy as np
import pytest
import scipy.stats

from diffrec_cli.errors import DiffrecError
from diffrec_cli.stats import compare_all, holm, paired_comparison

A = np.array([0.1, 0.2, 0.3, 0.0, 0.5])
B = np.array([0.2, 0.2, 0.5, 0.1, 0.4])  # B − A = [0.1, 0, 0.2, 0.1, −0.1]


def test_paired_comparison_by_hand_and_against_scipy():
    result = paired_comparison(A, B, name_a="a", name_b="b")
    # mean 0.06; sd (n − 1) = sqrt(0.052 / 4); t = 0.06 / (sd / √5)
    sd = math.sqrt(0.052 / 4)
    assert result.mean_diff == pytest.approx(0.06, abs=1e-15)
    assert result.t_statistic == pytest.approx(0.06 / (sd / math.sqrt(5)), rel=1e-12)
    assert result.effect_size == pytest.approx(0.06 / sd, rel=1e-12)
    half = scipy.stats.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert (result.ci_low, result.ci_high) == pytest.approx((0.06 - half, 0.06 + half), rel=1e-12)
    t = scipy.stats.ttest_rel(B, A)
    assert (result.t_statistic, result.t_p) == pytest.approx((t.statistic, t.pvalue), rel=1e-12)
    w = scipy.stats.wilcoxon(B, A)
    assert (result.wilcoxon_statistic, result.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue), rel=1e-12)
    assert (result.users, result.mean_a, result.mean_b) == (5, pytest.approx(0.22), pytest.approx(0.28))


def test_ci_matches_scipy_confidence_interval_on_random_vectors():
    rng = np.random.default_rng(0)
    a, b = rng.random(200), rng.random(200) + 0.05
    result = paired_comparison(a, b)
    ci = scipy.stats.ttest_rel(b, a).confidence_interval(0.95)
    assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_identical_and_constant_differences():
    same = paired_comparison(A, A)
    assert (same.t_p, same.wilcoxon_p, same.mean_diff, same.effect_size) == (1.0, 1.0, 0.0, 0.0)
    quarters = np.array([0.0, 0.25, 0.5, 0.25])
    shifted = paired_comparison(quarters, quarters + 0.5)  # exactly constant differences: no spread
    assert (shifted.t_p, shifted.t_statistic, shifted.ci_low, shifted.ci_high) == (0.0, math.inf, 0.5, 0.5)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([0.02]) == [0.02]


def test_compare_all_tests_every_pair_with_holm():
    c = np.array([0.3, 0.1, 0.6, 0.2, 0.2])
    pairs = compare_all({"a": A, "b": B, "c": c})
    assert [(p.a, p.b) for p in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    raw = [scipy.stats.ttest_rel(y, x).pvalue for x, y in ((A, B), (A, c), (B, c))]
    assert [p.t_p_holm for p in pairs] == pytest.approx(holm(raw), rel=1e-12)
    raw_w = [scipy.stats.wilcoxon(y, x).pvalue for x, y in ((A, B), (A, c), (B, c))]
    assert [p.wilcoxon_p_holm for p in pairs] == pytest.approx(holm(raw_w), rel=1e-12)


@pytest.mark.parametrize("a,b,word", [(A, B[:4], "same length"), (A[:1], B[:1], "at least 2")])
def test_bad_vectors(a, b, word):
    with pytest.raises(DiffrecError, match=word):
        paired_comparison(a, b)


def test_compare_all_needs_two():
    with pytest.raises(DiffrecError, match="at least two"):
        compare_all({"a": A})
