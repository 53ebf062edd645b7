"""The paper's data protocols (§4.1.1) as named recipes that turn a :class:`RawLog` into train/valid/test.

A recipe is a frozen dataclass: its fields are its parameters (``--set key=value`` on the command line),
and they are recorded in the prepared dataset's metadata. ``RECIPES`` maps protocol names to classes.

- ``clean``: ratings ≥ ``min_rating``; users with ≥ ``min_user`` interactions (with ``min_item`` > 0: the
  user/item k-core); time-ordered split ``ratios`` (7:2:1) per user (default; what the authors' released
  ML-1M split is) or with one global cut (``split=global``; interactions with equal timestamps at the cut
  are divided by file order); valid/test interactions whose item (or user)
  is absent from train are dropped; ids dense over what remains.
- ``noisy-natural``: the clean split plus a random sample of the same users' low-rated interactions
  (rating < ``min_rating``) as positives in train and valid, placed by their time; the test set is the
  clean one. ``proportion`` × the clean train+valid size are added (the authors' ML-1M: about 9 %).
- ``noisy-random``: the clean split plus, per user, ``round(proportion × n)`` items the user never
  interacted with added to train (n = the user's train size) and to valid (n = valid size); seeded.
- ``temporal``: the clean split of a log with timestamps, training interactions in chronological order.

Every recipe orders a user's interactions by (time, row of the file) and records ``train_order``: each
training interaction's 0-based chronological position within its user's training history.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl

from diffrec_cli.convert import coerce
from diffrec_cli.data.ingest import RawLog, value_ranges
from diffrec_cli.data.sparse import SPLITS, InteractionData, csr_from_pairs
from diffrec_cli.errors import DiffrecError

TRAIN, VALID, TEST = 0, 1, 2
SPLIT_MODES = ("per-user", "global")


@dataclass(frozen=True)
class Clean:
    """Clean training: keep ratings ≥ ``min_rating``, split each user's history by time."""

    name: ClassVar[str] = "clean"
    requires: ClassVar[str] = ""  # "rating" or "time": a log column the protocol cannot do without
    min_rating: float = 4.0
    min_user: int = 10
    min_item: int = 0
    ratios: tuple[float, float, float] = (0.7, 0.2, 0.1)
    split: str = "per-user"

    def __post_init__(self) -> None:
        if not math.isfinite(self.min_rating):
            raise DiffrecError(f"recipe {self.name}: min_rating must be a number, got {self.min_rating!r}")
        if self.min_user < 1 or self.min_item < 0:
            raise DiffrecError(f"recipe {self.name}: min_user must be >= 1 and min_item >= 0 "
                               f"(got {self.min_user}, {self.min_item})")
        if len(self.ratios) != 3 or not all(isinstance(r, (int, float)) and r > 0 for r in self.ratios):
            raise DiffrecError(f"recipe {self.name}: ratios must be three positive numbers "
                               f"(train, valid, test), got {list(self.ratios)}")
        if self.split not in SPLIT_MODES:
            raise DiffrecError(f"recipe {self.name}: split must be one of {', '.join(SPLIT_MODES)}, got {self.split!r}")

    # ----- the public face --------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ratios"] = [float(r) for r in self.ratios]
        return out

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.name, **self.params}

    def prepare(self, log: RawLog, name: str) -> InteractionData:
        report: dict[str, Any] = {"log_rows": log.frame.height}
        frame = self._assign(self._positives(log, report), report)
        frame = _drop_unseen(frame, report)
        return _finish(frame, log, name, self, report)

    # ----- steps shared by the recipes ---------------------------------------------------------------
    def _positives(self, log: RawLog, report: dict[str, Any]) -> pl.DataFrame:
        """Rating filter, repeated pairs (earliest kept), user filter / k-core; adds ``seq`` and ``okey``."""
        if self.requires and not log.meta.get(f"has_{self.requires}"):
            what = {"rating": "ratings", "time": "timestamps"}[self.requires]
            raise DiffrecError(f"recipe {self.name} needs {what}: {log.label} has no {self.requires} column")
        frame = _sequenced(log)
        if log.has_rating:
            frame = frame.filter(pl.col("rating") >= self.min_rating)
            report["below_min_rating"] = log.frame.height - frame.height
            if frame.height == 0:
                raise DiffrecError(f"recipe {self.name}: no interaction of {log.label} has a rating >= "
                                   f"{self.min_rating:g} (set min_rating lower)")
        else:
            report["rating_filter"] = "skipped: the log has no ratings"
        if not log.has_time:
            report["time_order"] = "the log has no timestamps: the order of its rows is taken as time order"
        before = frame.height
        frame = frame.unique(subset=["user", "item"], keep="first", maintain_order=True)
        report["repeated_pairs_dropped"] = before - frame.height
        before = frame.height
        while True:
            size = frame.height
            frame = frame.filter(pl.len().over("user") >= self.min_user)
            if self.min_item > 0:
                frame = frame.filter(pl.len().over("item") >= self.min_item)
            if self.min_item == 0 or frame.height == size:
                break
        report["core_filter_dropped"] = before - frame.height
        if frame.height == 0:
            raise DiffrecError(f"recipe {self.name}: no user of {log.label} keeps {self.min_user} interactions "
                               f"after the filters (set min_user lower)")
        return frame

    def _assign(self, frame: pl.DataFrame, report: dict[str, Any]) -> pl.DataFrame:
        """Label every interaction train (0) / valid (1) / test (2) by time."""
        r = np.asarray(self.ratios, dtype=np.float64)
        r = r / r.sum()
        if self.split == "global":
            frame = frame.sort("seq")
            n = frame.height
            pos = np.arange(n)
            cut1, cut2 = _cuts(np.array([n]), r)
            split = np.where(pos < cut1[0], TRAIN, np.where(pos < cut2[0], VALID, TEST))
        else:
            frame = frame.sort(["user", "seq"])
            counts = frame.group_by("user", maintain_order=True).len()["len"].to_numpy()
            n = np.repeat(counts, counts)
            pos = np.arange(len(n)) - np.repeat(np.cumsum(counts) - counts, counts)
            cut1, cut2 = _cuts(n, r)
            split = np.where(pos < cut1, TRAIN, np.where(pos < cut2, VALID, TEST))
        return frame.with_columns(split=pl.Series(split, dtype=pl.Int8), noise=pl.lit(False))


def _cuts(n: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per history of length n: train = [0, cut1), valid = [cut1, cut2), test = [cut2, n).

    Train gets ⌈n·r₀⌉ and train+valid ⌈n·(r₀+r₁)⌉, but test keeps at least one interaction (n ≥ 2) and
    valid at least one (n ≥ 3); train always keeps one.
    """
    c1 = np.ceil(np.round(n * r[0], 9)).astype(np.int64)
    c2 = np.ceil(np.round(n * (r[0] + r[1]), 9)).astype(np.int64)
    n_test = np.maximum(n - c2, (n >= 2).astype(np.int64))
    cut2 = n - n_test
    cut1 = np.maximum(np.minimum(c1, cut2 - (n >= 3)), 1)
    return cut1, cut2


def _sequenced(log: RawLog) -> pl.DataFrame:
    """The log with ``seq``: each interaction's rank in (time, row) order, and ``okey`` (its order key)."""
    return (log.frame.sort(["time", "row"], nulls_last=True).with_row_index("seq")
            .with_columns(pl.col("seq").cast(pl.Int64), okey=pl.col("seq").cast(pl.Float64)))


def _drop_unseen(frame: pl.DataFrame, report: dict[str, Any]) -> pl.DataFrame:
    """Keep valid/test interactions only where train has both the user and the item."""
    train = frame.filter(pl.col("split") == TRAIN)
    rest = frame.filter(pl.col("split") != TRAIN)
    kept = (rest.join(train.select("item").unique(), on="item", how="semi")
            .join(train.select("user").unique(), on="user", how="semi"))
    dropped = report.setdefault("unseen_dropped", {"valid": 0, "test": 0})
    for code, label in ((VALID, "valid"), (TEST, "test")):
        dropped[label] += int((rest["split"] == code).sum() - (kept["split"] == code).sum())
    return pl.concat([train, kept])


def _finish(frame: pl.DataFrame, log: RawLog, name: str, recipe: Any, report: dict[str, Any]) -> InteractionData:
    """Dense ids over what remains, CSR splits, chronological train_order, the interactions table, meta."""
    for code, label in enumerate(SPLITS):
        if not (frame["split"] == code).any():
            raise DiffrecError(f"recipe {recipe.name} leaves the {label} split of {name!r} empty "
                               f"({frame.height} interactions kept from {log.label}; try lower min_user or "
                               f"other ratios)")
    users = np.unique(frame["user"].to_numpy())
    items = np.unique(frame.filter(pl.col("split") == TRAIN)["item"].to_numpy())
    frame = (frame.with_columns(user=pl.Series(np.searchsorted(users, frame["user"].to_numpy()).astype(np.int32)),
                                item=pl.Series(np.searchsorted(items, frame["item"].to_numpy()).astype(np.int32)))
             .sort(["split", "user", "okey"])
             .with_columns(position=pl.int_range(pl.len(), dtype=pl.Int32).over(["split", "user"])))
    shape = (len(users), len(items))
    u, i = frame["user"].to_numpy(), frame["item"].to_numpy()
    split = frame["split"].to_numpy()
    position = frame["position"].to_numpy()
    mats = {label: csr_from_pairs(u[split == code], i[split == code], shape) for code, label in enumerate(SPLITS)}
    tr = split == TRAIN
    ranked = csr_from_pairs(u[tr], i[tr], shape, values=position[tr].astype(np.float32) + 1.0)
    train_order = (ranked.data - 1.0).astype(np.int32)
    interactions = frame.select(
        "user", "item", pl.col("split").replace_strict(dict(enumerate(SPLITS)), return_dtype=pl.String),
        "rating", "time", "position", "noise")
    ranges = {label: value_ranges(interactions.filter(pl.col("split") == label)) for label in SPLITS}
    source = dict(log.meta.get("source", {}))
    if log.meta.get("name"):
        source["log"] = log.meta["name"]
    meta = {"recipe": recipe.describe(), "source": source, "report": report, "ranges": ranges,
            "train_order": "chronological position within the user's training history"}
    return InteractionData(name=name, **mats, user_ids=log.user_ids.gather(users).to_numpy(),
                           item_ids=log.item_ids.gather(items).to_numpy(), train_order=train_order,
                           interactions=interactions, meta=meta)


@dataclass(frozen=True)
class _Noisy(Clean):
    """What the noisy protocols add to the clean one: how much noise (``proportion``) and its ``seed``."""

    proportion: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.proportion <= 1:
            raise DiffrecError(f"recipe {self.name}: proportion must be in (0, 1], got {self.proportion}")


@dataclass(frozen=True)
class NoisyNatural(_Noisy):
    """The clean split plus low-rated interactions of the same users as positives in train/valid."""

    name: ClassVar[str] = "noisy-natural"
    requires: ClassVar[str] = "rating"

    def prepare(self, log: RawLog, name: str) -> InteractionData:
        report: dict[str, Any] = {"log_rows": log.frame.height}
        positives = self._positives(log, report)
        assigned = self._assign(positives, report)
        clean = _drop_unseen(assigned, report)
        # Where each user's valid and test periods begin (before unseen items were dropped).
        if self.split == "global":
            starts = [assigned.filter(pl.col("split") == c)["seq"].min() for c in (VALID, TEST)]
            bounds = clean.select("user").unique().with_columns(valid_from=pl.lit(starts[0], dtype=pl.Int64),
                                                                 test_from=pl.lit(starts[1], dtype=pl.Int64))
        else:
            bounds = assigned.group_by("user").agg(
                valid_from=pl.col("seq").filter(pl.col("split") == VALID).min(),
                test_from=pl.col("seq").filter(pl.col("split") == TEST).min())
        never = np.iinfo(np.int64).max
        bounds = bounds.with_columns(test_from=pl.col("test_from").fill_null(never)).with_columns(
            valid_from=pl.col("valid_from").fill_null(pl.col("test_from")))
        candidates = (_sequenced(log).filter(pl.col("rating") < self.min_rating)
                      .unique(subset=["user", "item"], keep="first", maintain_order=True)
                      .join(positives.select("user", "item"), on=["user", "item"], how="anti")
                      .join(bounds, on="user", how="inner")
                      .with_columns(split=pl.when(pl.col("seq") < pl.col("valid_from")).then(TRAIN)
                                    .when(pl.col("seq") < pl.col("test_from")).then(VALID)
                                    .otherwise(TEST).cast(pl.Int8))
                      .filter(pl.col("split") != TEST)
                      .drop("valid_from", "test_from")
                      .sort("seq"))
        base = int((clean["split"] != TEST).sum())
        want = int(round(self.proportion * base))
        take = min(want, candidates.height)
        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.choice(candidates.height, size=take, replace=False))
        noise = candidates[chosen].with_columns(noise=pl.lit(True)).select(clean.columns)
        report["natural_noise"] = {"candidates": candidates.height, "requested": want,
                                   "train": int((noise["split"] == TRAIN).sum()),
                                   "valid": int((noise["split"] == VALID).sum())}
        frame = _drop_unseen(pl.concat([clean, noise]), report)
        return _finish(frame, log, name, self, report)


@dataclass(frozen=True)
class NoisyRandom(_Noisy):
    """The clean split plus, per user, random never-interacted items as positives in train and valid."""

    name: ClassVar[str] = "noisy-random"

    def prepare(self, log: RawLog, name: str) -> InteractionData:
        report: dict[str, Any] = {"log_rows": log.frame.height}
        clean = _drop_unseen(self._assign(self._positives(log, report), report), report)
        rng = np.random.default_rng(self.seed)
        items = np.unique(clean.filter(pl.col("split") == TRAIN)["item"].to_numpy())
        users = np.unique(clean["user"].to_numpy())
        n_items = len(items)
        # Everything the user touched in the log (any rating) is off limits, as is what is drawn already.
        seen = log.frame.select("user", "item")
        seen = seen.filter(pl.col("user").is_in(pl.Series(users).implode())
                           & pl.col("item").is_in(pl.Series(items).implode()))
        forbidden = np.unique(np.searchsorted(users, seen["user"].to_numpy()).astype(np.int64) * n_items
                              + np.searchsorted(items, seen["item"].to_numpy()))
        added = []
        for code in (TRAIN, VALID):
            part = clean.filter(pl.col("split") == code)
            stats = part.group_by("user").agg(n=pl.len(), lo=pl.col("okey").min(), hi=pl.col("okey").max()).sort("user")
            uidx = np.searchsorted(users, stats["user"].to_numpy())
            want = np.floor(self.proportion * stats["n"].to_numpy() + 0.5).astype(np.int64)
            got_u, got_i = _sample_unseen(uidx, want, n_items, forbidden, rng)
            forbidden = np.union1d(forbidden, got_u * n_items + got_i)
            row_of = np.searchsorted(uidx, got_u)
            lo, hi = stats["lo"].to_numpy()[row_of], stats["hi"].to_numpy()[row_of]
            added.append(pl.DataFrame({
                "user": users[got_u].astype(np.int32), "item": items[got_i].astype(np.int32),
                "okey": lo + rng.random(len(got_u)) * (hi - lo),  # a random moment of the user's period
                "split": np.full(len(got_u), code, dtype=np.int8)}))
            report.setdefault("random_noise", {})[SPLITS[code]] = {"requested": int(want.sum()), "added": len(got_u)}
        noise = pl.concat(added).with_columns(
            rating=pl.lit(None, dtype=pl.Float32), time=pl.lit(None, dtype=pl.Int64), row=pl.lit(-1, dtype=pl.Int64),
            seq=pl.lit(-1, dtype=pl.Int64), noise=pl.lit(True)).select(clean.columns)
        return _finish(pl.concat([clean, noise]), log, name, self, report)


def _sample_unseen(users: np.ndarray, want: np.ndarray, n_items: int, forbidden: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each ``users[j]``, ``want[j]`` distinct items whose key ``user·n_items + item`` is not forbidden.

    Vectorised rejection sampling; users with few free items are finished exactly one by one. A user with
    fewer free items than wanted gets all of them.
    """
    chosen = np.empty(0, dtype=np.int64)
    need = want.copy()
    for _ in range(8):
        active = np.flatnonzero(need > 0)
        if len(active) == 0:
            break
        draws = need[active] * 2 + 4
        u = np.repeat(users[active], draws).astype(np.int64)
        keys = u * n_items + rng.integers(0, n_items, int(draws.sum()))
        keys = keys[~_member(keys, forbidden) & ~_member(keys, chosen)]
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]  # distinct, in random draw order
        owner = keys // n_items
        order = np.argsort(owner, kind="stable")
        keys, owner = keys[order], owner[order]
        start = np.searchsorted(owner, owner, side="left")
        rank = np.arange(len(keys)) - start
        need_of = np.zeros(users.max() + 1 if len(users) else 1, dtype=np.int64)
        need_of[users] = need
        keep = rank < need_of[owner]
        chosen = np.union1d(chosen, keys[keep])
        need -= np.bincount(owner[keep], minlength=len(need_of))[users]
    for j in np.flatnonzero(need > 0):  # dense users: enumerate what is free
        base = int(users[j]) * n_items
        taken = np.concatenate([forbidden[(forbidden >= base) & (forbidden < base + n_items)],
                                chosen[(chosen >= base) & (chosen < base + n_items)]]) - base
        free = np.setdiff1d(np.arange(n_items), taken)
        pick = rng.choice(free, size=min(int(need[j]), len(free)), replace=False)
        chosen = np.union1d(chosen, base + pick)
    return chosen // n_items, chosen % n_items


def _member(keys: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(len(keys), dtype=bool)
    idx = np.clip(np.searchsorted(sorted_set, keys), 0, len(sorted_set) - 1)
    return sorted_set[idx] == keys


@dataclass(frozen=True)
class Temporal(Clean):
    """The clean split of a log with timestamps; training interactions kept in chronological order."""

    name: ClassVar[str] = "temporal"
    requires: ClassVar[str] = "time"


RECIPES: dict[str, type[Clean]] = {cls.name: cls for cls in (Clean, NoisyNatural, NoisyRandom, Temporal)}


def recipe_settings(protocol: str) -> dict[str, Any]:
    """The parameters of a protocol and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(_recipe_class(protocol))}


def make_recipe(protocol: str, settings: dict[str, Any] | None = None) -> Clean:
    """A recipe from its protocol name and settings (text is read as the default's type: ``convert.coerce``)."""
    cls = _recipe_class(protocol)
    defaults = recipe_settings(protocol)
    kwargs = {}
    for key, value in (settings or {}).items():
        if key not in defaults:
            raise DiffrecError(f"recipe {protocol} has no setting {key!r} (settings: {', '.join(defaults)})")
        try:
            kwargs[key] = coerce(value, defaults[key])
        except DiffrecError as exc:
            raise DiffrecError(f"recipe {protocol} setting {key}: {exc}") from None
    return cls(**kwargs)


def _recipe_class(protocol: str) -> type[Clean]:
    try:
        return RECIPES[protocol]
    except KeyError:
        raise DiffrecError(f"unknown protocol {protocol!r} (choose from {', '.join(RECIPES)})") from None
