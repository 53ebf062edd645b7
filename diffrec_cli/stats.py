"""Paired significance tests between models evaluated on the same users.

Every model is scored on the same users, so per-user metric differences are paired: the paired t-test
(what the DiffRec paper reports) and the Wilcoxon signed-rank test (no normality assumption; per-user
Recall is bounded and lumpy) both run on them. With more than two models every pair is tested, and Holm's
step-down correction keeps the family-wise error rate at the nominal level over all pairs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from diffrec_cli.errors import DiffrecError


@dataclass(frozen=True)
class PairedComparison:
    a: str
    b: str
    users: int
    mean_a: float
    mean_b: float
    mean_diff: float  # mean of (b − a) over users
    ci_low: float  # 95 % confidence interval of the mean difference (t distribution)
    ci_high: float
    effect_size: float  # Cohen's d_z: mean difference / sd of the differences (0 when they are all equal)
    t_statistic: float
    t_p: float
    wilcoxon_statistic: float
    wilcoxon_p: float
    t_p_holm: float = math.nan
    wilcoxon_p_holm: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)


def paired_comparison(a: np.ndarray, b: np.ndarray, *, name_a: str = "a", name_b: str = "b") -> PairedComparison:
    """Paired t-test, Wilcoxon signed-rank test, effect size and 95 % CI of mean(b − a)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DiffrecError(f"paired vectors must have the same length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise DiffrecError(f"a paired test needs at least 2 users, got {len(a)}")
    diff = b - a
    n, mean = len(diff), float(diff.mean())
    sd = float(diff.std(ddof=1))
    if sd == 0.0:
        # identical differences: no spread to test against; equal models are "no evidence of a difference"
        t_stat, t_p = (0.0, 1.0) if mean == 0.0 else (math.copysign(math.inf, mean), 0.0)
        half = 0.0
    else:
        t_stat, t_p = (float(v) for v in scipy.stats.ttest_rel(b, a))
        half = float(scipy.stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    if np.any(diff != 0):
        w = scipy.stats.wilcoxon(b, a)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
    else:
        w_stat, w_p = 0.0, 1.0
    return PairedComparison(name_a, name_b, n, float(a.mean()), float(b.mean()), mean, mean - half, mean + half,
                            mean / sd if sd > 0 else 0.0, t_stat, t_p, w_stat, w_p)


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order: the i-th smallest of m is multiplied by
    (m − i + 1), running maxima keep the order monotone, and nothing exceeds 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def compare_all(vectors: dict[str, np.ndarray]) -> list[PairedComparison]:
    """Every pair (in the given order, a before b), with Holm-corrected p-values over all pairs."""
    if len(vectors) < 2:
        raise DiffrecError("compare needs at least two models")
    pairs = [paired_comparison(vectors[x], vectors[y], name_a=x, name_b=y)
             for x, y in itertools.combinations(vectors, 2)]
    t_holm = holm([p.t_p for p in pairs])
    w_holm = holm([p.wilcoxon_p for p in pairs])
    return [PairedComparison(**{**p.to_dict(), "t_p_holm": th, "wilcoxon_p_holm": wh})
            for p, th, wh in zip(pairs, t_holm, w_holm)]
