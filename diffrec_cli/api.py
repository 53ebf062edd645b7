"""The Python façade: ``from diffrec_cli import train, load_run, recommend``.

Three calls cover what the ``diffrec`` command does most: train a model into a run folder, load a trained
run back, and recommend for users. Each resolves the data home (``home``, else ``$DIFFREC_HOME``, else the
platform's data folder) and the plugins itself; errors are :class:`diffrec_cli.errors.DiffrecError` with a
one-line message. The library modules underneath (``training.job``, ``serve``) stay available for more
control.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

if TYPE_CHECKING:
    import polars as pl

    from diffrec_cli.serve import Served
    from diffrec_cli.training.job import TrainOutcome

PathLike = str | os.PathLike


def train(model: str | None = None, dataset: str | None = None, *, config: PathLike | Mapping[str, Any] | None = None,
          home: PathLike | None = None, reporter: Callable[[Any], None] | None = None,
          **settings: Any) -> "TrainOutcome":
    """Train ``model`` (default ``diffrec``) on the prepared ``dataset`` (default ``demo``, built on first use).

    ``config``: a TOML file (as ``diffrec train --config``) or a dict of settings; keyword ``settings`` override
    it, e.g. ``epochs=50, steps=40, dims=[200, 600]`` (the keys of ``--set``). ``reporter`` receives every
    training event (``diffrec_cli.training.events``). Returns the outcome: ``.run`` (its folder and ``.id``),
    ``.model`` (at the best epoch), ``.data``, ``.result`` (best epoch, validation and test metrics), ``.config``.

    >>> outcome = train("diffrec", "demo", epochs=20)             # doctest: +SKIP
    >>> outcome.result.test["recall@20"], outcome.run.id          # doctest: +SKIP
    """
    from diffrec_cli.config import flat_settings, read_toml, resolve_settings
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.plugins import get_registry
    from diffrec_cli.training.events import silent
    from diffrec_cli.training.job import train as train_job

    if isinstance(config, Mapping):
        file_settings = flat_settings(dict(config))
    else:
        file_settings = read_toml(config) if config is not None else {}
    resolved = resolve_settings(file_settings, settings, model=model, dataset=dataset)
    return train_job(resolved, get_registry(), home=DataHome(home), reporter=reporter or silent)


def load_run(run: PathLike, *, home: PathLike | None = None, device: str = "cpu") -> "Served":
    """A trained run ready to use: its best checkpoint and its dataset (checked unchanged since training).

    ``run``: a run id (or any unique prefix or suffix of one), a run folder or a checkpoint folder. The result
    has ``.model``, ``.data``, ``.meta`` (what was trained, how, and its metrics) and ``.inputs``.
    """
    from diffrec_cli.data.store import DataHome
    from diffrec_cli.plugins import get_registry
    from diffrec_cli.serve import load_served

    return load_served(str(run), get_registry(), home=DataHome(home), device=device)


def recommend(run: "PathLike | Served | TrainOutcome", users: Iterable[Any], k: int = 10, *,
              skip_unknown: bool = False, cold_start: str | None = None, home: PathLike | None = None,
              device: str = "cpu") -> "pl.DataFrame":
    """The top-``k`` unseen items for each user, as a polars DataFrame of ``user, rank, item, score`` (ids in
    the dataset's own type; items seen in any split are never recommended).

    ``run``: what :func:`load_run` or :func:`train` returned, or anything :func:`load_run` accepts. Users the
    dataset does not know are an error unless ``skip_unknown`` (they get no rows) or ``cold_start="popular"``
    (they get the most popular items, scored by their number of training interactions).

    >>> recommend("9098", ["42", "7"], k=5)                        # doctest: +SKIP
    """
    from diffrec_cli.serve import recommend as recommend_users

    if isinstance(run, (str, os.PathLike)):
        run = load_run(run, home=home, device=device)
    return recommend_users(run.model, run.data, users, k=k, inputs=run.inputs, skip_unknown=skip_unknown,
                           cold_start=cold_start).frame
