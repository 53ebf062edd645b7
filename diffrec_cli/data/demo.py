"""A synthetic interaction log with structure to learn, and the bundled demo dataset built from it.

The log has long-tailed item popularity and user activity, user tastes over item groups that drift
over time, ratings that depend on taste, and timestamps. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.errors import DiffrecError

DEMO = dict(users=1200, items=900, interactions=90_000, seed=7)


def generate_log(users: int, items: int, interactions: int, *, seed: int = 0, groups: int | None = None,
                 noise_share: float = 0.1) -> pl.DataFrame:
    """Columns user, item, rating (1–5), time (unix seconds). Duplicate (user, item) pairs are removed."""
    if users < 1 or items < 2 or interactions < users:
        raise DiffrecError("need users >= 1, items >= 2 and at least one interaction per user")
    rng = np.random.default_rng(seed)
    groups = groups or max(2, min(40, items // 25))
    item_group = rng.integers(0, groups, items)
    popularity = rng.permutation((np.arange(1, items + 1) ** -0.9))  # Zipf-like long tail
    # Long-tailed user activity, at least 10 interactions each, scaled to the requested total.
    activity = rng.lognormal(0.0, 0.9, users)
    counts = np.maximum(10, np.round(activity / activity.sum() * interactions)).astype(np.int64)
    counts = np.minimum(counts, items // 2)
    user = np.repeat(np.arange(users), counts)
    n = len(user)
    # Each user's taste starts at one Dirichlet draw and drifts toward another over their timeline.
    taste_start = rng.dirichlet(np.full(groups, 0.25), users).astype(np.float32)
    taste_end = 0.6 * taste_start + 0.4 * rng.dirichlet(np.full(groups, 0.25), users).astype(np.float32)
    phase = rng.random(n).astype(np.float32)
    order_in_user = np.argsort(user * 2.0 + phase, kind="stable")
    phase = phase[order_in_user]  # sorted per user: phase is the position on the user's timeline
    chosen_group = np.empty(n, dtype=np.int64)
    chunk = 500_000
    for lo in range(0, n, chunk):
        u, ph = user[lo:lo + chunk], phase[lo:lo + chunk, None]
        probs = (1 - ph) * taste_start[u] + ph * taste_end[u]
        cdf = np.cumsum(probs, axis=1)
        draw = rng.random(len(u))[:, None] * cdf[:, -1:]
        chosen_group[lo:lo + chunk] = np.minimum((cdf < draw).sum(axis=1), groups - 1)
    # Within a group, items are drawn by popularity (inverse CDF over a group-sorted item list).
    by_group = np.argsort(item_group, kind="stable")
    pop_sorted = popularity[by_group]
    group_bounds = np.searchsorted(item_group[by_group], np.arange(groups + 1))
    cum = np.cumsum(pop_sorted)
    cum_before = np.concatenate([[0.0], cum])
    lo_mass, hi_mass = cum_before[group_bounds[:-1]], cum_before[group_bounds[1:]]
    empty = hi_mass <= lo_mass
    chosen_group = np.where(empty[chosen_group], rng.integers(0, groups, n), chosen_group)
    target = lo_mass[chosen_group] + rng.random(n) * (hi_mass[chosen_group] - lo_mass[chosen_group])
    item = by_group[np.clip(np.searchsorted(cum, target, side="right"), 0, items - 1)]
    # Some interactions ignore taste: popular items picked at random (the natural noise a recommender meets).
    noisy = rng.random(n) < noise_share
    item[noisy] = rng.choice(items, noisy.sum(), p=popularity / popularity.sum())
    affinity = ((1 - phase) * taste_start[user, item_group[item]] + phase * taste_end[user, item_group[item]]) * groups
    score = 2.2 + 1.2 * np.log1p(affinity) + rng.normal(0, 0.8, n) - 1.5 * noisy
    rating = np.clip(np.round(score), 1, 5).astype(np.int8)
    start = 1_600_000_000 + rng.integers(0, 86_400 * 200, users)
    span = rng.integers(86_400 * 30, 86_400 * 400, users)
    time = (start[user] + phase * span[user]).astype(np.int64)
    frame = pl.DataFrame({"user": user, "item": item, "rating": rating, "time": time})
    return frame.unique(subset=["user", "item"], keep="first", maintain_order=True)


def per_user_chronological_split(log: pl.DataFrame, *, min_rating: int = 4, min_user: int = 10,
                                 ratios: tuple[float, float, float] = (0.7, 0.2, 0.1), name: str = "demo") -> InteractionData:
    """The clean protocol: keep ratings >= ``min_rating``, users with >= ``min_user`` of them, and split each
    user's history by time into train/valid/test; valid/test items unseen in train are dropped."""
    kept = log.filter(pl.col("rating") >= min_rating)
    kept = kept.filter(pl.len().over("user") >= min_user).sort(["user", "time"])
    kept = kept.with_columns(
        pos=pl.int_range(pl.len()).over("user"), n=pl.len().over("user")
    ).with_columns(
        split=pl.when(pl.col("pos") < (pl.col("n") * ratios[0]).ceil()).then(0)
        .when(pl.col("pos") < (pl.col("n") * (ratios[0] + ratios[1])).ceil()).then(1).otherwise(2)
    )
    train_items = kept.filter(pl.col("split") == 0)["item"].unique()
    kept = kept.filter((pl.col("split") == 0) | pl.col("item").is_in(train_items.implode()))
    users = np.sort(kept["user"].unique().to_numpy())
    items = np.sort(kept.filter(pl.col("split") == 0)["item"].unique().to_numpy())
    uidx = np.searchsorted(users, kept["user"].to_numpy())
    iidx = np.searchsorted(items, kept["item"].to_numpy())
    split = kept["split"].to_numpy()
    shape = (len(users), len(items))
    tr = split == 0
    train_pos = csr_from_pairs(uidx[tr], iidx[tr], shape, values=kept["pos"].to_numpy()[tr].astype(np.float32) + 1)
    return InteractionData(
        name=name,
        train=csr_from_pairs(uidx[tr], iidx[tr], shape),
        valid=csr_from_pairs(uidx[split == 1], iidx[split == 1], shape),
        test=csr_from_pairs(uidx[split == 2], iidx[split == 2], shape),
        user_ids=users, item_ids=items, train_order=(train_pos.data - 1).astype(np.int32),
        meta={"recipe": {"protocol": "clean", "min_rating": min_rating, "min_user": min_user,
                         "ratios": list(ratios), "split": "per-user"}},
    )


def build_demo() -> InteractionData:
    """The bundled demo dataset: the generator's log at fixed settings, split by the clean protocol."""
    log = generate_log(DEMO["users"], DEMO["items"], DEMO["interactions"], seed=DEMO["seed"])
    data = per_user_chronological_split(log, name="demo")
    data.meta["source"] = {"format": "generated", **DEMO}
    return data
