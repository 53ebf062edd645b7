"""A synthetic interaction log with structure to learn, and the bundled demo dataset built from it.

The log has long-tailed item popularity and user activity, user tastes over item groups that drift
over time, ratings that depend on taste, a share of taste-free (noisy) picks, and timestamps.
Deterministic for a given seed. Fast enough for Amazon-book scale (about 10⁵ users × 10⁵ items ×
3·10⁶ interactions in seconds, about 1 GB).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.errors import DiffrecError

DEMO = dict(users=1200, items=900, interactions=60_000, seed=7)
_CHUNK = 500_000  # rows per block when drawing groups (bounds the (rows × groups) temporary)


def _user_counts(rng: np.random.Generator, users: int, items: int, interactions: int) -> np.ndarray:
    """Long-tailed (log-normal) activity, at least ``min(10, N/U)`` each, summing to ``interactions``."""
    floor = min(10, interactions // users)
    activity = rng.lognormal(0.0, 0.9, users)
    extra = (interactions - floor * users) * activity / activity.sum()
    counts = np.floor(extra).astype(np.int64)
    short = (interactions - floor * users) - int(counts.sum())
    counts[np.argsort(extra - counts)[::-1][:short]] += 1  # largest remainders get the leftover
    return np.minimum(counts + floor, max(1, items // 2))


def generate_log(users: int, items: int, interactions: int, *, seed: int = 0, groups: int | None = None,
                 noise_share: float = 0.1, with_groups: bool = False) -> pl.DataFrame:
    """Columns user, item, rating (1–5), time (unix seconds), one row per distinct (user, item) pair.

    About ``interactions`` rows (exactly, unless some user asks for more items than a redraw can find).
    ``with_groups`` adds ``group``, the item's latent group (for diagnostics and tests).
    """
    if users < 1 or items < 2 or interactions < users:
        raise DiffrecError("need users >= 1, items >= 2 and at least one interaction per user")
    rng = np.random.default_rng(seed)
    groups = groups or max(2, min(40, items // 25))
    item_group = rng.integers(0, groups, items)
    popularity = rng.permutation((np.arange(1, items + 1) ** -0.9))  # Zipf-like long tail
    counts = _user_counts(rng, users, items, interactions)
    user = np.repeat(np.arange(users), counts)
    n = len(user)
    # Each user's taste starts at one Dirichlet draw and drifts toward another over their timeline.
    taste_start = rng.dirichlet(np.full(groups, 0.25), users).astype(np.float32)
    taste_end = 0.6 * taste_start + 0.4 * rng.dirichlet(np.full(groups, 0.25), users).astype(np.float32)
    # phase: the position on the user's timeline, increasing within each user
    phase = rng.random(n).astype(np.float32)
    phase = phase[np.argsort(user * 2.0 + phase, kind="stable")]
    chosen_group = _drifting_groups(rng, user, phase, taste_start, taste_end)
    # Some interactions ignore taste: popular items picked at random (the natural noise a recommender meets).
    sampler = _ItemSampler(rng, item_group, popularity, groups, chosen_group, noise_share)
    item = sampler.draw(np.arange(n))
    # A user picks an item once: redraw repeated (user, item) pairs a few times, then drop what is left.
    for _ in range(12):
        _, first = np.unique(user.astype(np.int64) * items + item, return_index=True)
        repeat = np.ones(n, dtype=bool)
        repeat[first] = False
        if not repeat.any():
            break
        rows = np.flatnonzero(repeat)
        item[rows] = sampler.draw(rows)
    affinity = ((1 - phase) * taste_start[user, item_group[item]] + phase * taste_end[user, item_group[item]]) * groups
    score = 2.2 + 1.2 * np.log1p(affinity) + rng.normal(0, 0.8, n) - 1.5 * sampler.noisy
    rating = np.clip(np.round(score), 1, 5).astype(np.int8)
    start = 1_600_000_000 + rng.integers(0, 86_400 * 200, users)
    span = rng.integers(86_400 * 30, 86_400 * 400, users)
    time = (start[user] + phase * span[user]).astype(np.int64)
    frame = pl.DataFrame({"user": user, "item": item, "rating": rating, "time": time})
    if with_groups:
        frame = frame.with_columns(group=pl.Series(item_group[item].astype(np.int32)))
    return frame.unique(subset=["user", "item"], keep="first", maintain_order=True)


def _drifting_groups(rng: np.random.Generator, user: np.ndarray, phase: np.ndarray, taste_start: np.ndarray,
                     taste_end: np.ndarray) -> np.ndarray:
    """Per interaction, an item group drawn from the user's taste at that point of their timeline."""
    n, groups = len(user), taste_start.shape[1]
    chosen_group = np.empty(n, dtype=np.int64)
    for lo in range(0, n, _CHUNK):
        u, ph = user[lo:lo + _CHUNK], phase[lo:lo + _CHUNK, None]
        probs = (1 - ph) * taste_start[u] + ph * taste_end[u]
        cdf = np.cumsum(probs, axis=1)
        draw = rng.random(len(u))[:, None] * cdf[:, -1:]
        chosen_group[lo:lo + _CHUNK] = np.minimum((cdf < draw).sum(axis=1), groups - 1)
    return chosen_group


class _ItemSampler:
    """Draws an item per interaction row: by popularity within the row's item group, or, for the rows
    that ignore taste (``noisy``, a ``noise_share`` of them), by popularity alone.
    """

    def __init__(self, rng: np.random.Generator, item_group: np.ndarray, popularity: np.ndarray, groups: int,
                 chosen_group: np.ndarray, noise_share: float) -> None:
        n = len(chosen_group)
        self.rng, self.items = rng, len(item_group)
        # Inverse CDF over a group-sorted item list.
        self.by_group = np.argsort(item_group, kind="stable")
        group_bounds = np.searchsorted(item_group[self.by_group], np.arange(groups + 1))
        self.cum = np.cumsum(popularity[self.by_group])
        cum_before = np.concatenate([[0.0], self.cum])
        self.lo_mass, self.hi_mass = cum_before[group_bounds[:-1]], cum_before[group_bounds[1:]]
        empty = self.hi_mass <= self.lo_mass  # a group without items: the row takes a random group
        self.chosen_group = np.where(empty[chosen_group], rng.integers(0, groups, n), chosen_group)
        self.noisy = rng.random(n) < noise_share
        self.pop_p = popularity / popularity.sum()

    def draw(self, rows: np.ndarray) -> np.ndarray:
        g = self.chosen_group[rows]
        target = self.lo_mass[g] + self.rng.random(len(rows)) * (self.hi_mass[g] - self.lo_mass[g])
        out = self.by_group[np.clip(np.searchsorted(self.cum, target, side="right"), 0, self.items - 1)]
        mask = self.noisy[rows]
        out[mask] = self.rng.choice(self.items, int(mask.sum()), p=self.pop_p)
        return out


def build_demo() -> InteractionData:
    """The bundled demo dataset: the generator's log at fixed settings, prepared by the clean recipe."""
    from diffrec_cli.data.ingest import log_from_frame
    from diffrec_cli.data.recipes import Clean

    frame = generate_log(DEMO["users"], DEMO["items"], DEMO["interactions"], seed=DEMO["seed"])
    log = log_from_frame(frame, source={"format": "generated", **DEMO})
    return Clean().prepare(log, "demo")
