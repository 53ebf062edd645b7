"""Hyper-parameter search: a grid or random search over a search space, each trial a normal training run.

Every trial is ``diffrec_cli.training.loop.train`` with the trial's settings, so it gets its own run
directory (config, metrics, checkpoint) like any other run. Trials are ranked by the validation metric the
trainer selects epochs on (``metric``, default Recall@20); the test metrics of the selected trial are
reported and never used for selection.

A search space maps setting names to a list of choices (grid or random) or, for random search only, to a
range ``{loguniform = [lo, hi]}``, ``{uniform = [lo, hi]}`` or ``{int = [lo, hi]}``. Every model may
declare a default space as the class attribute ``search_space`` (the baselines' and DiffRec's follow the
paper's §4.1.3). A TOML space file holds a ``[search]`` table; any other keys (flat, or in ``[train]`` /
``[model]`` tables) are fixed settings for every trial.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from diffrec_cli.atomic import jsonable as _jsonable, write_json
from diffrec_cli.config import Settings, flat_settings, load_toml, resolve_settings
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.registry import Registry
from diffrec_cli.runs import RESUME_DIR, new_run_id
from diffrec_cli.training.events import Reporter, TrainingStarted, silent
from diffrec_cli.training.shared_fit import SharedFits, worth_sharing

RANGE_KINDS = ("loguniform", "uniform", "int")
TUNE_FILE = "tune.json"  # HOME/tunes/TUNE_ID/tune.json: the search, rewritten after every trial
DEFAULT_RANDOM_TRIALS = 20


@dataclass
class SearchSpace:
    choices: dict[str, list[Any]] = field(default_factory=dict)
    ranges: dict[str, tuple[str, float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values in self.choices.items():
            if not isinstance(values, (list, tuple)) or len(values) == 0:
                raise DiffrecError(f"search space: {name!r} needs a non-empty list of choices, got {values!r}")
            self.choices[name] = list(values)
        for name, (kind, lo, hi) in self.ranges.items():
            if kind not in RANGE_KINDS:
                raise DiffrecError(f"search space: {name!r}: unknown range kind {kind!r} (use {', '.join(RANGE_KINDS)})")
            if not lo <= hi or (kind == "loguniform" and lo <= 0):
                raise DiffrecError(f"search space: {name!r}: bad range [{lo}, {hi}] for {kind}")
        both = set(self.choices) & set(self.ranges)
        if both:
            raise DiffrecError(f"search space: {sorted(both)[0]!r} is given twice")
        if not self.choices and not self.ranges:
            raise DiffrecError("the search space is empty")

    @property
    def names(self) -> list[str]:
        return [*self.choices, *self.ranges]

    def grid_size(self) -> int | None:
        """Points in the full grid; None when a continuous range makes it infinite."""
        if self.ranges:
            return None
        return math.prod(len(v) for v in self.choices.values())

    def grid(self) -> Iterator[dict[str, Any]]:
        if self.ranges:
            raise DiffrecError(f"grid search needs lists of choices; {next(iter(self.ranges))!r} is a range",
                               hint=Hint(options=("strategy",), value="random"))
        names = list(self.choices)
        for values in itertools.product(*(self.choices[n] for n in names)):
            yield dict(zip(names, values))

    def sample(self, rng: random.Random) -> dict[str, Any]:
        point = {name: rng.choice(values) for name, values in self.choices.items()}
        for name, (kind, lo, hi) in self.ranges.items():
            if kind == "loguniform":
                point[name] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            elif kind == "uniform":
                point[name] = float(rng.uniform(lo, hi))
            else:
                point[name] = rng.randint(int(lo), int(hi))
        return point

    def to_dict(self) -> dict[str, Any]:
        return {**self.choices, **{n: {k: [lo, hi]} for n, (k, lo, hi) in self.ranges.items()}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "SearchSpace":
        choices: dict[str, list[Any]] = {}
        ranges: dict[str, tuple[str, float, float]] = {}
        for name, value in raw.items():
            key = name.replace("-", "_")
            if isinstance(value, dict):
                if len(value) != 1 or next(iter(value)) not in RANGE_KINDS:
                    raise DiffrecError(f"search space: {name!r} must be a list of choices or one of "
                                       f"{{loguniform|uniform|int = [lo, hi]}}, got {value!r}")
                kind, bounds = next(iter(value.items()))
                if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                    raise DiffrecError(f"search space: {name!r}: {kind} needs [lo, hi], got {bounds!r}")
                try:
                    ranges[key] = (kind, float(bounds[0]), float(bounds[1]))
                except (TypeError, ValueError):
                    raise DiffrecError(f"search space: {name!r}: {kind} bounds must be numbers, got {bounds!r}") from None
            elif isinstance(value, (list, tuple)):
                choices[key] = list(value)
            else:
                raise DiffrecError(f"search space: {name!r} must be a list of choices, got {value!r} "
                                   f"(fixed settings go outside the [search] table)")
        return cls(choices, ranges)


def read_space_file(path: str | Path) -> tuple[SearchSpace, dict[str, Any]]:
    """A TOML file with a ``[search]`` table (the space) and fixed settings anywhere else."""
    raw = load_toml(path, "search space file")
    search = raw.get("search")
    if not isinstance(search, dict) or not search:
        raise DiffrecError(f"search space file {path} needs a non-empty [search] table")
    fixed = {k: v for k, v in flat_settings(raw).items() if k != "search"}
    return SearchSpace.from_dict(search), fixed


def default_space(registry: Registry, model: str) -> SearchSpace:
    """The model's declared ``search_space`` (for the paper's models: its §4.1.3 scopes)."""
    space = registry.get("model", model).cls.search_space
    if not space:
        raise DiffrecError(f"model {model!r} declares no default search space",
                           hint=Hint(options=("space",), value="FILE.toml", purpose="give one"))
    return SearchSpace.from_dict(dict(space))


def plan_trials(space: SearchSpace, strategy: str = "auto", max_trials: int | None = None,
                seed: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """The trials' settings, in order. ``auto`` is grid when the whole grid fits ``max_trials``, else random.

    Random search never repeats a point of a finite space (and stops at its size).
    """
    if strategy not in ("auto", "grid", "random"):
        raise DiffrecError(f"strategy must be auto, grid or random, got {strategy!r}")
    if max_trials is not None and max_trials < 1:
        raise DiffrecError(f"max_trials must be >= 1, got {max_trials}")
    size = space.grid_size()
    if strategy == "auto":
        strategy = "grid" if size is not None and (max_trials is None or size <= max_trials) else "random"
    if strategy == "grid":
        points = list(itertools.islice(space.grid(), max_trials))
        return strategy, points
    wanted = max_trials or DEFAULT_RANDOM_TRIALS
    if size is not None:
        wanted = min(wanted, size)
    rng = random.Random(seed)
    points: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(points) < wanted and attempts < 100 * wanted:
        attempts += 1
        point = space.sample(rng)
        key = json.dumps(point, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        points.append(point)
    return strategy, points


# ----- events --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneStarted:
    tune_id: str
    model: str
    dataset: str
    strategy: str
    trials: int
    metric: str
    names: list[str]


@dataclass(frozen=True)
class TrialStarted:
    number: int
    total: int
    params: dict[str, Any]


@dataclass(frozen=True)
class TrialFinished:
    trial: "Trial"
    total: int
    best: "Trial | None"


@dataclass(frozen=True)
class TuneFinished:
    result: "TuneResult"


@dataclass
class Trial:
    number: int
    params: dict[str, Any]
    status: str = "pending"  # finished | stopped | failed | skipped
    run_id: str | None = None
    run_path: str | None = None
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0
    parameters: int | None = None
    error: str | None = None

    def score(self, metric: str) -> float | None:
        value = self.valid.get(metric)
        return None if value is None else float(value)


@dataclass
class TuneResult:
    tune_id: str
    path: Path | None
    model: str
    dataset: str
    strategy: str
    metric: str
    fixed: dict[str, Any]
    space: dict[str, Any]
    trials: list[Trial]
    seconds: float = 0.0
    timed_out: bool = False
    interrupted: bool = False  # Ctrl-C: the running trial kept its best evaluation, the rest were skipped

    @property
    def ranked(self) -> list[Trial]:
        """Trials with a validation score, best first (ties: the earlier trial)."""
        scored = [t for t in self.trials if t.score(self.metric) is not None]
        return sorted(scored, key=lambda t: (-t.score(self.metric), t.number))

    @property
    def best(self) -> Trial | None:
        ranked = self.ranked
        return ranked[0] if ranked else None

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> "TuneResult":
        """A summary written by :meth:`to_dict` (for ``--resume``); a DiffrecError when it is not one."""
        try:
            trials = [Trial(**{k: v for k, v in t.items() if k in Trial.__dataclass_fields__}) for t in raw["trials"]]
            return cls(str(raw["tune_id"]), path, str(raw["model"]), str(raw["dataset"]), str(raw["strategy"]),
                       str(raw["metric"]), dict(raw["fixed"]), dict(raw["space"]), trials, float(raw["seconds"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DiffrecError(f"{path / TUNE_FILE} is not a search summary ({type(exc).__name__}: {exc})") from None

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        return {"tune_id": self.tune_id, "model": self.model, "dataset": self.dataset, "strategy": self.strategy,
                "metric": self.metric, "selection": f"validation {self.metric}; test metrics are reported only",
                "fixed": self.fixed, "space": self.space, "seconds": self.seconds, "timed_out": self.timed_out,
                "interrupted": self.interrupted,
                "selected": best.number if best else None, "trials": [asdict(t) for t in self.trials]}


def tune(model: str, dataset: str, registry: Registry, *, home: DataHome, space: SearchSpace | None = None,
         fixed: dict[str, Any] | None = None, strategy: str = "auto", max_trials: int | None = None,
         timeout: float | None = None, seed: int = 0, reporter: Reporter = silent,
         should_stop: Callable[[], bool] = lambda: False) -> TuneResult:
    """Run the search; returns every trial and the selected one (``result.best``).

    ``fixed`` settings apply to every trial (trial settings win on a clash). ``timeout`` (seconds) stops
    starting trials once it has passed and stops the running one at the deadline; a stopped trial's best
    evaluation so far still counts. Results go to ``HOME/tunes/TUNE_ID/tune.json`` after every trial.
    """
    space = space or default_space(registry, model)
    fixed = {key: value for key, value in (fixed or {}).items() if key not in ("model", "dataset")}
    strategy, points = plan_trials(space, strategy, max_trials, seed)
    base = resolve_settings(fixed, {}, model=model, dataset=dataset)  # validates the fixed settings early
    registry.get("model", model)
    home.load(dataset)  # fail before any trial when the dataset is missing
    tune_id = new_run_id(model, dataset)
    folder = home.root / "tunes" / tune_id
    folder.mkdir(parents=True, exist_ok=True)
    result = TuneResult(tune_id, folder, model, dataset, strategy, base.train.metric, _jsonable(fixed),
                        _jsonable(space.to_dict()), [Trial(i + 1, _jsonable(p)) for i, p in enumerate(points)])
    reporter(TuneStarted(tune_id, model, dataset, strategy, len(points), result.metric, space.names))
    return _search(result, registry, home, timeout, reporter, should_stop)


def read_tune(home: DataHome, tune_or_path: str) -> TuneResult:
    """A saved search: its id (or a unique prefix) under ``HOME/tunes``, its folder, or its tune.json."""
    folder = Path(tune_or_path[:-len(TUNE_FILE)] if tune_or_path.endswith(TUNE_FILE) else tune_or_path)
    if not (folder / TUNE_FILE).is_file():  # an id or prefix under HOME/tunes
        matches = sorted(p for p in (home.root / "tunes").glob(f"{tune_or_path}*") if p.is_dir())
        if len(matches) != 1:
            raise DiffrecError(f"no single search {tune_or_path!r} in {home.root / 'tunes'} ({len(matches)} match)")
        folder = matches[0]
    try:
        raw = json.loads((folder / TUNE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DiffrecError(f"cannot read {folder / TUNE_FILE}: {exc}") from None
    return TuneResult.from_dict(raw, folder)


def resume_tune(tune_id: str, registry: Registry, *, home: DataHome, timeout: float | None = None,
                reporter: Reporter = silent, should_stop: Callable[[], bool] = lambda: False) -> TuneResult:
    """Continue a search: finished and failed trials stay as they are, the interrupted trial resumes from its
    run's resumable state (or starts again when it has none) and the trials not run yet run."""
    result = read_tune(home, tune_id)
    result.interrupted, result.timed_out = False, False
    reporter(TuneStarted(result.tune_id, result.model, result.dataset, result.strategy, len(result.trials),
                         result.metric, list(result.space)))
    return _search(result, registry, home, timeout, reporter, should_stop)


def _search(result: TuneResult, registry: Registry, home: DataHome, timeout: float | None, reporter: Reporter,
            should_stop: Callable[[], bool]) -> TuneResult:
    started, done_before = time.perf_counter(), result.seconds
    deadline = None if timeout is None else started + timeout
    # trials that differ only in a closed-form model's refit settings share its factors, where that pays
    shared, sharing = SharedFits(), worth_sharing(registry.get("model", result.model).cls, result.trials)

    def out_of_time() -> bool:
        return deadline is not None and time.perf_counter() >= deadline

    def stop_trial() -> bool:
        return out_of_time() or should_stop()

    def save() -> None:
        result.seconds = done_before + time.perf_counter() - started
        write_json(result.path / TUNE_FILE, result.to_dict())

    save()
    try:
        for trial in result.trials:
            if trial.status in ("finished", "failed"):
                continue
            if result.interrupted or stop_trial():
                result.timed_out = out_of_time()
                trial.status = "skipped"
                continue
            reporter(TrialStarted(trial.number, len(result.trials), trial.params))
            tick, share = time.perf_counter(), shared if sharing[trial.number - 1] else None
            result.interrupted = _run_trial(trial, result, registry, home, reporter, stop_trial, save, share)
            trial.seconds += time.perf_counter() - tick
            save()
            reporter(TrialFinished(trial, len(result.trials), result.best))
    finally:
        result.timed_out = result.timed_out or out_of_time()
        save()
    _require_a_score(result)
    reporter(TuneFinished(result))
    return result


def _require_a_score(result: TuneResult) -> None:
    if result.best is None:
        if result.interrupted:  # Ctrl-C before any trial scored: nothing to report, the caller was stopped
            raise KeyboardInterrupt
        errors = [t.error for t in result.trials if t.error]
        raise DiffrecError("no trial produced a validation score" + (f"; first error: {errors[0]}" if errors else ""))


def _run_trial(trial: Trial, result: TuneResult, registry: Registry, home: DataHome, reporter: Reporter,
               stop: Callable[[], bool], save: Callable[[], None], shared: SharedFits | None = None) -> bool:
    """Train (or resume) one trial and fill ``trial`` in; True when the user pressed Ctrl-C, which ends the
    whole search."""
    from diffrec_cli.training.job import resume_training, train

    def report(event: Any) -> None:
        if isinstance(event, TrainingStarted):  # the run exists now: a later --resume can find it
            trial.run_id, trial.status = event.run_id, "running"
            save()
        reporter(event)

    try:
        if trial.run_id and (home.runs_dir / trial.run_id / RESUME_DIR).is_dir():
            outcome = resume_training(trial.run_id, registry, home=home, reporter=report, should_stop=stop)
        else:
            settings = resolve_settings(result.fixed, trial.params, model=result.model, dataset=result.dataset)
            outcome = train(settings, registry, home=home, reporter=report, should_stop=stop, shared=shared)
    except DiffrecError as exc:
        trial.status, trial.error = "failed", str(exc)
    except KeyboardInterrupt:  # Ctrl-C before the trial's training loop began
        trial.status = "stopped"
        return True
    except Exception as exc:  # a diverging trial must not end the search
        trial.status, trial.error = "failed", f"{type(exc).__name__}: {exc}"
    else:
        fit = outcome.result
        trial.status = "stopped" if fit.interrupted else "finished"
        trial.run_id, trial.run_path = outcome.run.id, str(outcome.run.path)
        trial.valid, trial.test = _jsonable(fit.valid), _jsonable(fit.test)
        trial.best_epoch, trial.epochs_run = fit.best_epoch, fit.epochs_run
        trial.parameters = outcome.model.parameter_count()
        return fit.interrupted and not stop()  # not the deadline nor the caller: Ctrl-C, which ends the search
    return False

