"""Using a trained model: load it with its dataset, evaluate it, recommend for users."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import polars as pl
import torch
from polars.io.plugins import register_io_source

from diffrec_cli.atomic import atomic_path
from diffrec_cli.data.sparse import InteractionData, dense_rows, row_positions
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.registry import Registry
from diffrec_cli.runs import STATUS_FILE, read_run, resolve_run
from diffrec_cli.training.checkpoint import CheckpointMeta, load_checkpoint
from diffrec_cli.training.device import pick_device
from diffrec_cli.training.evaluate import eval_batch_size, evaluate


@dataclass
class Served:
    model: torch.nn.Module
    data: InteractionData
    meta: CheckpointMeta
    inputs: Any  # the (reweighted) training matrix the model reads as input
    run_status: str | None = None  # the run's status (runs.read_run) when served from a run folder

    @property
    def ks(self) -> list[int]:
        return self.meta.ks


def load_served(run_or_checkpoint: str, registry: Registry, *, home: DataHome, device: str = "cpu") -> Served:
    path = resolve_run(home.runs_dir, run_or_checkpoint)
    loaded = load_checkpoint(path, registry, device=pick_device(device))
    info = loaded.meta.dataset
    data = home.load(info.name)
    if data.fingerprint() != info.fingerprint:
        raise DiffrecError(f"dataset {info.name!r} has changed since this model was trained "
                           f"(fingerprint {data.fingerprint()} != {info.fingerprint})")
    status = read_run(path).status if (path / STATUS_FILE).is_file() else None
    return Served(loaded.model, data, loaded.meta, loaded.model.inputs(data), status)


def evaluate_served(served: Served, splits: Iterable[str] = ("valid", "test")) -> dict[str, dict[str, float]]:
    device = next(served.model.parameters()).device
    return evaluate(served.model.scores, served.data, splits=tuple(splits), ks=served.ks, device=device,
                    input_matrix=served.inputs)


def recommend_for_users(model: torch.nn.Module, data: InteractionData, raw_users: Iterable[Any], k: int = 10,
                        inputs: Any = None, batch_size: int | None = None) -> pl.DataFrame:
    """Top-k unseen items per user: columns user, rank, item, score, the ids in the dataset's own type
    (integer ids stay integers). Scores come from the user's training row (the model's input in evaluation
    too); items seen in any split are never recommended."""
    rows = np.array([data.user_index(u) for u in raw_users], dtype=np.int64)
    frames = [frame for _, frame in recommendation_batches(model, data, rows, k, inputs=inputs,
                                                           batch_size=batch_size)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=recommendation_schema(data))


def recommendation_schema(data: InteractionData) -> dict[str, Any]:
    """The columns of a recommendation frame, typed as :func:`id_column` types the dataset's ids."""
    def id_type(ids: np.ndarray) -> Any:
        return pl.Int64 if ids.dtype.kind in "iu" else pl.String

    return {"user": id_type(data.user_ids), "rank": pl.Int64, "item": id_type(data.item_ids), "score": pl.Float64}


@torch.no_grad()
def recommendation_batches(model: torch.nn.Module, data: InteractionData, rows: np.ndarray, k: int = 10, *,
                           inputs: Any = None, batch_size: int | None = None,
                           ) -> Iterator[tuple[np.ndarray, pl.DataFrame]]:
    """:func:`recommend_for_users` for user rows (dense indices): (the batch's rows, their frame) per batch
    of users as it is scored. Memory stays bounded by the batch (batch × items scores, the top k kept),
    whatever the number of users; seen items are masked from the CSR splits of the batch's rows."""
    if k <= 0:
        raise DiffrecError(f"k must be positive, got {k}")
    inputs = data.train if inputs is None else inputs
    device = next(model.parameters()).device
    k = min(k, data.n_items)
    batch_size = batch_size or eval_batch_size(data.n_items)
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo:lo + batch_size]
        scores = model.scores(torch.from_numpy(chunk).to(device), dense_rows(inputs, chunk, device)).float()
        for split in (data.train, data.valid, data.test):
            row_of, cols, _ = row_positions(split, chunk)
            scores[torch.from_numpy(row_of).to(device), torch.from_numpy(cols).to(device)] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        values, items = top.values.cpu().numpy(), top.indices.cpu().numpy()
        keep = np.isfinite(values)  # fewer than k unseen items (or a model's NaN): those slots stay empty
        frame = pl.DataFrame({"user": id_column(data.user_ids[np.repeat(chunk, keep.sum(axis=1))]),
                              "rank": np.cumsum(keep, axis=1)[keep].astype(np.int64),
                              "item": id_column(data.item_ids[items[keep]]),
                              "score": values[keep].astype(np.float64)}, schema=recommendation_schema(data))
        yield chunk, frame


def write_all_recommendations(model: torch.nn.Module, data: InteractionData, out: Path, k: int = 10, *,
                              inputs: Any = None, batch_size: int | None = None,
                              row_group_size: int | None = None, rows: np.ndarray | None = None,
                              on_batch: Callable[[int], None] | None = None) -> int:
    """Every user's (or the user ``rows``') top-k written to ``out`` (.parquet in row groups of
    ``row_group_size`` rows, or .csv) as the batches are scored, never held whole; ``on_batch(users)`` after
    each batch. The file appears under its name only once complete (written to a temporary name, renamed
    in). Returns the rows written."""
    if out.suffix not in (".parquet", ".csv"):
        raise DiffrecError(f"recommendations for all users are written to .parquet or .csv, got {out.name!r}")
    users = np.arange(data.n_users) if rows is None else np.asarray(rows, dtype=np.int64)
    written, failure = [0], []

    def source(with_columns: list[str] | None, *_: Any) -> Iterator[pl.DataFrame]:
        try:
            for chunk, frame in recommendation_batches(model, data, users, k, inputs=inputs,
                                                       batch_size=batch_size):
                written[0] += frame.height
                if on_batch is not None:
                    on_batch(len(chunk))
                yield frame if with_columns is None else frame.select(with_columns)
        except BaseException as exc:  # polars re-raises it as its own error: keep the original to raise
            failure.append(exc)
            raise

    lazy = register_io_source(source, schema=recommendation_schema(data))
    with atomic_path(out) as tmp:
        try:
            if out.suffix == ".parquet":
                lazy.sink_parquet(tmp, row_group_size=row_group_size)
            else:
                lazy.sink_csv(tmp)
        except Exception:
            if failure:
                raise failure[0] from None
            raise
    return written[0]


def id_column(ids: np.ndarray) -> pl.Series:
    """Raw ids as a column: integers as Int64, anything else as text (also when there are none)."""
    if ids.dtype.kind in "iu":
        return pl.Series(ids.astype(np.int64))
    return pl.Series([str(v) for v in ids.tolist()], dtype=pl.String)


# ----- users the dataset does not know ----------------------------------------------------------------
COLD_START = ("popular",)  # what unknown users can be given instead of an error


@dataclass
class Recommendations:
    """Top-k rows (user, rank, item, score) in the order the users were given, and the unknown users.

    ``unknown`` lists the users the dataset does not know: left out (``skip_unknown``) or given the most
    popular items (``cold_start="popular"``, their scores being the items' training-interaction counts).
    """

    frame: pl.DataFrame
    unknown: list[Any] = field(default_factory=list)


def unknown_users(data: InteractionData, raw_users: Iterable[Any]) -> list[Any]:
    """The users of ``raw_users`` (as given) that ``data`` has no row for, in order, without repeats."""
    missing: dict[str, Any] = {}
    for user in raw_users:
        try:
            data.user_index(user)
        except DiffrecError:
            missing.setdefault(str(user), user)
    return list(missing.values())


def recommend(model: torch.nn.Module, data: InteractionData, raw_users: Iterable[Any], k: int = 10, *,
              inputs: Any = None, skip_unknown: bool = False, cold_start: str | None = None) -> Recommendations:
    """:func:`recommend_for_users` for a list that may hold users the dataset does not know.

    Unknown users are an error unless ``skip_unknown`` (they get no rows) or ``cold_start="popular"`` (they
    get the ``k`` items with the most training interactions).
    """
    if cold_start is not None and cold_start not in COLD_START:
        raise DiffrecError(f"cold start must be one of {', '.join(COLD_START)}, got {cold_start!r}")
    if skip_unknown and cold_start is not None:
        raise DiffrecError("unknown users are either skipped or given popular items, not both")
    raw_users = list(raw_users)
    missing = unknown_users(data, raw_users)
    if missing and not skip_unknown and cold_start is None:
        shown = ", ".join(repr(str(u)) for u in missing[:5]) + (", ..." if len(missing) > 5 else "")
        what = f"unknown user id {shown}" if len(missing) == 1 else f"{len(missing)} unknown user ids ({shown})"
        raise DiffrecError(f"{what} in dataset {data.name!r}",
                           hint=Hint(options=("skip_unknown", "cold_start"),
                                     purpose="leave them out or give them the most popular items"))
    unknown = {str(u) for u in missing}
    known = [u for u in raw_users if str(u) not in unknown]
    if cold_start is None or not missing:
        return Recommendations(recommend_for_users(model, data, known, k=k, inputs=inputs), missing)
    frame = recommend_for_users(model, data, list(dict.fromkeys(known)), k=k, inputs=inputs)
    blocks = {str(u): popular_for_users(data, [u], k) for u in missing}
    if any(block["user"].dtype != frame["user"].dtype for block in blocks.values()):
        # an unknown id that is not of the dataset's id type (text among integer ids): all ids as text
        frame = frame.with_columns(pl.col("user").cast(pl.String))
        blocks = {u: block.with_columns(pl.col("user").cast(pl.String)) for u, block in blocks.items()}
    for key, block in frame.partition_by("user", as_dict=True, maintain_order=True).items():
        blocks[str(key[0])] = block
    # each user's block in the order the users were given
    return Recommendations(pl.concat([blocks[str(u)] for u in raw_users if str(u) in blocks]), missing)


def popular_for_users(data: InteractionData, raw_users: Iterable[Any], k: int = 10) -> pl.DataFrame:
    """The ``k`` items with the most training interactions (ties: the lower item index), the same list for
    each user, scored by that count; the rows look like :func:`recommend_for_users`'s."""
    counts = data.train.getnnz(axis=0)
    top = np.argsort(-counts, kind="stable")[:min(k, data.n_items)]
    users = list(raw_users)
    return pl.DataFrame({"user": _raw_ids(np.repeat(np.array(users, dtype=object), len(top)), data.user_ids),
                         "rank": np.tile(np.arange(1, len(top) + 1, dtype=np.int64), len(users)),
                         "item": id_column(data.item_ids[np.tile(top, len(users))]),
                         "score": np.tile(counts[top].astype(np.float64), len(users))})


def _raw_ids(values: np.ndarray, like: np.ndarray) -> pl.Series:
    """Ids given as text, as integers where the dataset's ids are integers and the text reads as one."""
    if like.dtype.kind in "iu":
        try:
            return pl.Series(values.astype(np.int64))
        except (TypeError, ValueError):
            pass
    return pl.Series([str(v) for v in values], dtype=pl.String)
