"""The leaderboard's work, one resumable step at a time: tune a model, retrain its selection per seed,
evaluate every run user by user. ``benchmarks/leaderboard_ml1m.py`` is the command around it.

Everything done is written to ``OUT/state.json`` (atomically, after every step) and the per-user vectors
to ``OUT/vectors/MODEL-sSEED.npz``; a rerun reads both and skips what is there. Runs and searches are
ordinary diffrec runs (``HOME/runs``) and searches (``HOME/tunes``), so ``diffrec compare`` and
``diffrec tune --resume`` work on them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from diffrec_cli.atomic import write_json
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.store import DataHome
from diffrec_cli.registry import Registry
from diffrec_cli.serve import load_served
from diffrec_cli.training.evaluate import evaluate_per_user
from diffrec_cli.tuning import SearchSpace, TuneStarted, default_space, read_tune, resume_tune, tune

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
METRIC = "recall@20"


class State:
    """OUT/state.json: {"config": ..., "models": {name: {"start": trial, "tune_id": str, "selected": trial,
    "seeds": {"1": row}}}}, saved after every change."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.path = folder / "state.json"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vectors").mkdir(exist_ok=True)
        raw = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        self.config = raw.get("config", config)
        self.models: dict[str, dict[str, Any]] = raw.get("models", {})

    def model(self, name: str) -> dict[str, Any]:
        return self.models.setdefault(name, {})

    def save(self) -> None:
        write_json(self.path, {"config": self.config, "models": self.models})

    def merge(self, other: Path) -> list[str]:
        """Copy the models another cache folder (same settings, e.g. a parallel ``--models`` subset) has
        retrained for more seeds than this one, with their vectors; the names copied."""
        raw = json.loads((other / "state.json").read_text(encoding="utf-8"))
        if raw.get("config") != self.config:
            raise ValueError(f"{other} holds a leaderboard with other settings ({raw.get('config')})")
        copied = []
        for name, entry in raw["models"].items():
            if len(entry.get("seeds", {})) > len(self.models.get(name, {}).get("seeds", {})):
                for seed in entry["seeds"]:
                    shutil.copyfile(other / "vectors" / f"{name}-s{seed}.npz", self.vector_path(name, int(seed)))
                self.models[name] = entry
                copied.append(name)
        self.save()
        return copied

    def vector_path(self, name: str, seed: int) -> Path:
        return self.folder / "vectors" / f"{name}-s{seed}.npz"


def run_seconds(run_path: str) -> tuple[float, float]:
    """(training seconds without evaluations, seconds per evaluation) from a run's final.json: the median
    epoch times the epochs run (a closed-form fit is one epoch)."""
    final = json.loads((Path(run_path) / "final.json").read_text(encoding="utf-8"))
    epochs = float(final.get("epoch_seconds_median") or 0.0) * int(final.get("epochs_run") or 0)
    return epochs, float(final.get("eval_seconds_median") or 0.0)


def train_point(registry: Registry, home: DataHome, model: str, dataset: str, settings: dict[str, Any],
                seed: int) -> dict[str, Any]:
    """One ordinary training run of ``settings``; what the leaderboard keeps of it."""
    from diffrec_cli.training.job import train

    resolved = resolve_settings(settings, {}, model=model, dataset=dataset, seed=seed)
    outcome = train(resolved, registry, home=home)
    fit = outcome.result
    return {"params": settings, "run_id": outcome.run.id, "run_path": str(outcome.run.path), "seed": seed,
            "valid": {k: float(fit.valid[k]) for k in KEYS}, "test": {k: float(fit.test[k]) for k in KEYS},
            "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
            "parameters": int(outcome.model.parameter_count())}


def search(registry: Registry, home: DataHome, state: State, name: str, dataset: str, fixed: dict[str, Any],
           space: dict[str, Any] | None, trials: int, model: str | None = None) -> list[dict[str, Any]]:
    """``trials`` random points of the model's search space through ``diffrec tune`` (resumed when a
    previous invocation left it unfinished); their scored trials as leaderboard rows."""
    entry = state.model(name)
    if trials < 1:
        return []
    if entry.get("tune_id"):
        result = read_tune(home, entry["tune_id"])
        if any(t.status not in ("finished", "failed") for t in result.trials):
            result = resume_tune(entry["tune_id"], registry, home=home)
    else:
        def remember(event: Any) -> None:
            if isinstance(event, TuneStarted):
                entry["tune_id"] = event.tune_id
                state.save()

        chosen = SearchSpace.from_dict(space) if space else default_space(registry, model or name)
        result = tune(model or name, dataset, registry, home=home, space=chosen, fixed=fixed, strategy="random",
                      max_trials=trials, seed=0, reporter=remember)
    return [{"params": {**fixed, **t.params}, "run_id": t.run_id, "run_path": t.run_path, "seed": 1,
             "valid": {k: float(t.valid[k]) for k in KEYS}, "test": {k: float(t.test[k]) for k in KEYS},
             "best_epoch": t.best_epoch, "epochs_run": t.epochs_run, "parameters": t.parameters}
            for t in result.trials if t.status in ("finished", "stopped") and METRIC in t.valid]


def select(registry: Registry, home: DataHome, state: State, name: str, dataset: str, start: dict[str, Any],
           fixed: dict[str, Any], space: dict[str, Any] | None, trials: int,
           model: str | None = None) -> dict[str, Any]:
    """The trial budget: the recorded starting point plus ``trials − 1`` random points; the best on
    validation Recall@20 (ties: the earlier trial) is the selection, recorded once. ``model``: the
    registered model behind row ``name`` when they differ (a named setting of another model)."""
    entry = state.model(name)
    if "selected" in entry:
        return entry["selected"]
    if "start" not in entry:
        entry["start"] = train_point(registry, home, model or name, dataset, {**fixed, **start}, seed=1)
        state.save()
    rows = [entry["start"], *search(registry, home, state, name, dataset, fixed, space, trials - 1, model)]
    entry["trials"] = len(rows)
    entry["selected"] = max(rows, key=lambda r: (r["valid"][METRIC], -rows.index(r)))
    state.save()
    return entry["selected"]


def seed_row(registry: Registry, home: DataHome, state: State, name: str, dataset: str, seed: int,
             model: str | None = None) -> dict[str, Any]:
    """The selected settings trained with ``seed`` (the selected trial itself for its own seed), evaluated
    once more user by user on test (timed), its vectors saved."""
    entry = state.model(name)
    seeds = entry.setdefault("seeds", {})
    if str(seed) in seeds:
        return seeds[str(seed)]
    selected = entry["selected"]
    row = dict(selected) if selected["seed"] == seed else train_point(registry, home, model or name, dataset,
                                                                     selected["params"], seed)
    row["train_s"], row["eval_epoch_s"] = run_seconds(row["run_path"])
    tick = time.perf_counter()
    served = load_served(row["run_id"], registry, home=home)
    users, values = evaluate_per_user(served.model.scores, served.data, split="test", ks=(10, 20),
                                      input_matrix=served.inputs)
    row["eval_s"] = time.perf_counter() - tick
    np.savez(state.vector_path(name, seed), users=users, **{k: values[k] for k in KEYS})
    seeds[str(seed)] = row
    state.save()
    return row


def vectors(state: State, name: str, seeds: list[int]) -> dict[str, np.ndarray]:
    """Per-user test metrics averaged over the seeds (users in the same order for every model)."""
    loaded = [np.load(state.vector_path(name, s)) for s in seeds]
    return {k: np.mean([v[k] for v in loaded], axis=0) for k in KEYS}
