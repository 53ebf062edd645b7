"""Full-ranking evaluation: every item not already seen is ranked; top-K metrics, vectorised in torch.

Metrics are averaged over the users who have at least one ground-truth item in the evaluated split.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from diffrec_cli.data.sparse import InteractionData, dense_rows
from diffrec_cli.metrics import DEFAULT_KS, METRICS  # noqa: F401  (re-exported: the trainer's names)


def eval_batch_size(n_items: int) -> int:
    """Users per evaluation batch: big enough to keep the matrix units busy, small enough that the
    handful of (batch × n_items) temporaries of one batch stay under about 50 MB (on ML-1M, 373 users
    scored as fast as 746 and the run's peak RSS fell by 50 MB)."""
    return int(max(64, min(1024, 2**20 // max(1, n_items))))


def per_user_metrics(scores: torch.Tensor, truth: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Every metric for each user, float64 vectors of length B: ``scores`` (B, n) with seen items at −inf,
    ``truth`` (B, n) boolean, every row with at least one relevant item."""
    n_true = truth.sum(dim=1).to(torch.float64)
    k_max = min(max(ks), scores.shape[1])
    top = torch.topk(scores, k_max, dim=1).indices
    hits = truth.gather(1, top).to(torch.float64)  # (B, k_max): 1 where the ranked item is relevant
    discount = 1.0 / torch.log2(torch.arange(2, k_max + 2, dtype=torch.float64, device=scores.device))
    ideal_cum = torch.cumsum(discount, 0)
    positions = torch.arange(1, k_max + 1, dtype=torch.float64, device=scores.device)
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        kk = min(k, k_max)
        h = hits[:, :kk]
        n_hit = h.sum(dim=1)
        dcg = (h * discount[:kk]).sum(dim=1)
        idcg = ideal_cum[(n_true.clamp(max=kk) - 1).long()]
        first = torch.where(h > 0, positions[:kk], torch.full_like(h, math.inf)).min(dim=1).values
        out[f"recall@{k}"] = n_hit / n_true
        out[f"precision@{k}"] = n_hit / k
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"mrr@{k}"] = 1.0 / first
        out[f"hit@{k}"] = (n_hit > 0).to(torch.float64)
    return out


class MetricAccumulator:
    """Sums of per-user metrics over batches; ``result()`` gives the means over users with ground truth."""

    def __init__(self, ks: Sequence[int] = DEFAULT_KS) -> None:
        self.ks = tuple(sorted(ks))
        self.sums = {f"{m}@{k}": 0.0 for m in METRICS for k in self.ks}
        self.users = 0
        # each added batch's metric sums and user count, in order: sharded evaluation merges the ranks'
        # batches in the single-process order, so the float sums come out bit for bit the same
        self.batch_totals: list[list[float]] = []

    def add(self, scores: torch.Tensor, truth: torch.Tensor) -> None:
        """``scores`` (B, n) with seen items already at −inf; ``truth`` (B, n) boolean ground truth."""
        has_truth = truth.any(dim=1)
        if not bool(has_truth.any()):
            self.add_totals([0.0] * (len(self.sums) + 1))
            return
        if not bool(has_truth.all()):  # most batches have ground truth in every row: no copies then
            scores, truth = scores[has_truth], truth[has_truth]
        values = per_user_metrics(scores, truth, self.ks)
        self.add_totals([float(values[name].sum()) for name in self.sums] + [float(has_truth.sum())])

    def add_totals(self, totals: Sequence[float]) -> None:
        """One batch's metric sums (in ``sums`` order) followed by its number of users with ground truth."""
        self.batch_totals.append(list(totals))
        for name, total in zip(self.sums, totals):
            self.sums[name] += total
        self.users += int(totals[-1])

    def result(self) -> dict[str, float]:
        out = {name: (total / self.users if self.users else 0.0) for name, total in self.sums.items()}
        out["users"] = self.users
        return out


ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ranked_batches(score_fn: ScoreFn, data: InteractionData, splits: tuple[str, ...], device: torch.device | str,
                    batch_size: int | None, inputs: sp.csr_matrix,
                    part: tuple[int, int] = (0, 1)) -> Iterator[tuple[str, np.ndarray, torch.Tensor, torch.Tensor]]:
    """(split, user rows, scores with seen items at −inf, boolean truth) per batch and requested split.

    Validation masks training items; test masks training and validation items. Both come from the same
    scores because a model's scores depend only on its input (the training interactions); test masks the
    validation ranking's tensor further, in place, so use each before asking for the next. With ``part``
    (rank, ranks) only every ranks-th batch from the rank-th on is scored: one rank's share.
    """
    batch_size = batch_size or eval_batch_size(data.n_items)
    # Users without ground truth in any requested split need no scores at all.
    needed = np.zeros(data.n_users, dtype=bool)
    for s in splits:
        needed |= np.diff(data.split(s).indptr) > 0
    users = np.flatnonzero(needed)
    for lo in range(part[0] * batch_size, len(users), part[1] * batch_size):
        rows = users[lo:lo + batch_size]
        scores = score_fn(torch.from_numpy(rows).to(device), dense_rows(inputs, rows, device)).float()
        # masks built as booleans directly (a float matrix compared with 0 costs two more passes)
        seen = dense_rows(data.train, rows, device, torch.bool)
        masked = None
        for s in ("valid", "test"):
            if s not in splits:
                continue
            if masked is None:  # a copy: a model may hand back a tensor it keeps
                if s == "test":
                    seen |= dense_rows(data.valid, rows, device, torch.bool)
                masked = scores.masked_fill(seen, -math.inf)
                # neither the input rows nor the unmasked scores stay alive while the metrics are computed
                scores = seen = None
            else:  # test after validation: its items join the masked copy, in place
                masked.masked_fill_(dense_rows(data.valid, rows, device, torch.bool), -math.inf)
            yield s, rows, masked, dense_rows(data.split(s), rows, device, torch.bool)


@torch.no_grad()
def evaluate(score_fn: ScoreFn, data: InteractionData, *, splits: Iterable[str] = ("valid", "test"),
             ks: Sequence[int] = DEFAULT_KS, device: torch.device | str = "cpu", batch_size: int | None = None,
             input_matrix: sp.csr_matrix | None = None) -> dict[str, dict[str, float]]:
    """Score every user once from their training row, then rank for each requested split: the means over
    users with ground truth in the split."""
    accumulators = accumulate(score_fn, data, splits=splits, ks=ks, device=device, batch_size=batch_size,
                              input_matrix=input_matrix)
    return {split: acc.result() for split, acc in accumulators.items()}


@torch.no_grad()
def accumulate(score_fn: ScoreFn, data: InteractionData, *, splits: Iterable[str] = ("valid", "test"),
               ks: Sequence[int] = DEFAULT_KS, device: torch.device | str = "cpu", batch_size: int | None = None,
               input_matrix: sp.csr_matrix | None = None,
               part: tuple[int, int] = (0, 1)) -> dict[str, MetricAccumulator]:
    """``evaluate``'s sums per split before the means, over this ``part`` (rank, ranks) of the batches."""
    splits = tuple(splits)
    inputs = input_matrix if input_matrix is not None else data.train
    acc = {s: MetricAccumulator(ks) for s in splits}
    for split, _, scores, truth in _ranked_batches(score_fn, data, splits, device, batch_size, inputs, part):
        acc[split].add(scores, truth)
    return acc


@torch.no_grad()
def evaluate_per_user(score_fn: ScoreFn, data: InteractionData, *, split: str = "test",
                      ks: Sequence[int] = DEFAULT_KS, device: torch.device | str = "cpu",
                      batch_size: int | None = None,
                      input_matrix: sp.csr_matrix | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The per-user values behind ``evaluate``'s means, for paired tests between models.

    Returns the user rows with ground truth in ``split`` (ascending) and, per metric name, a float64 array
    aligned with them; each array's mean is the metric ``evaluate`` reports.
    """
    inputs = input_matrix if input_matrix is not None else data.train
    ks = tuple(sorted(ks))
    user_parts: list[np.ndarray] = []
    value_parts: dict[str, list[np.ndarray]] = {}
    for _, rows, scores, truth in _ranked_batches(score_fn, data, (split,), device, batch_size, inputs):
        has_truth = truth.any(dim=1)
        user_parts.append(rows[has_truth.cpu().numpy()])
        if not bool(has_truth.any()):
            continue
        for name, values in per_user_metrics(scores[has_truth], truth[has_truth], ks).items():
            value_parts.setdefault(name, []).append(values.cpu().numpy())
    users = np.concatenate(user_parts) if user_parts else np.zeros(0, dtype=np.int64)
    names = [f"{m}@{k}" for m in METRICS for k in ks]
    return users, {name: (np.concatenate(value_parts[name]) if name in value_parts else np.zeros(0))
                   for name in names}
