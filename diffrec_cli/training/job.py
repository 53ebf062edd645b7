"""``diffrec train`` as one library call: settings → model → run folder → fit, with the recorder listening.

The data flow, file by file: ``config.py`` (settings) → ``models/build.py`` via ``registry.py`` (the model
and its components) → ``data/store.py`` (the dataset) → ``runs.py`` (the run folder) → ``training/loop.py``
(fit) → events → ``training/recorder.py`` → ``training/checkpoint.py``.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import scipy.sparse as sp
import torch

from diffrec_cli.atomic import jsonable
from diffrec_cli.config import Settings, TrainConfig, resolve_settings
from diffrec_cli.convert import coerce
from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.build import build_component, build_model
from diffrec_cli.models.spec import ModelSpec
from diffrec_cli.registry import Registry, constructor_params
from diffrec_cli.runs import CONFIG_FILE, Run, resolve_run
from diffrec_cli.training.budget import check_training_fits
from diffrec_cli.training.checkpoint import CheckpointMeta, DatasetRef, rebuild_recorded
from diffrec_cli.training.device import pick_device, seed_everything
from diffrec_cli.training.distributed import join, require_distributable
from diffrec_cli.training.events import Reporter, TrainingAborted, TrainingStarted, silent
from diffrec_cli.training.loop import FitResult, fit, never
from diffrec_cli.training.precision import Probe, replayed_probe
from diffrec_cli.training.recorder import RunRecorder
from diffrec_cli.training.resume import TrainingState, latest_state
from diffrec_cli.training.shared_fit import SharedFits

# what a resumed run may change: how long it goes on
RESUMABLE_CHANGES = ("epochs", "patience")


@dataclass
class TrainOutcome:
    run: Run | None  # None on the ranks of a data-parallel job other than rank 0, which alone writes
    model: torch.nn.Module
    data: InteractionData
    result: FitResult
    spec: ModelSpec
    config: TrainConfig

    @property
    def inputs(self) -> sp.csr_matrix:
        """The (reweighted) training matrix the model reads."""
        return self.result.inputs


def _fan_out(listeners: list[Reporter], run: Run) -> Reporter:
    def report(event: Any) -> None:
        if isinstance(event, TrainingStarted):  # the loop knows no run; its listeners want the id and folder
            event = dataclasses.replace(event, run_id=run.id, run_dir=str(run.path))
        for listener in listeners:
            listener(event)

    return report


def train(settings: Settings, registry: Registry, *, home: DataHome, reporter: Reporter = silent,
          should_stop: Callable[[], bool] = never, shared: SharedFits | None = None) -> TrainOutcome:
    """Everything ``diffrec train`` does, callable from Python. ``shared``: a search's store of factors
    that closed-form fits differing only in their model's ``refit_settings`` share."""
    config = settings.train
    data = home.load(config.dataset)
    # Every check before the run folder exists: a bad setting leaves nothing behind.
    device = pick_device(config.device)
    parallel = join(device)  # launched as one of several ranks (torchrun, --nproc)?
    check_training_fits(registry, config, settings.model, data, parallel.place(device))
    require_distributable(registry.get("model", config.model).cls, parallel.ranks)
    seed_everything(config.seed)  # the initial weights follow the seed, not whatever ran before in this process
    model, spec = _built(registry, config.model, settings.model, data)
    if not parallel.leads:  # trains in step with rank 0, which writes the run folder
        return TrainOutcome(None, model, data, fit(model, data, config, should_stop=should_stop), spec, config)
    home.tidy()
    callbacks = build_callbacks(registry, config.callbacks, settings.tracking)  # bad ones fail before the run
    run = Run.create(home.runs_dir, config.model, config.dataset,
                     {"model": config.model, "dataset": config.dataset, "train": config.to_dict(),
                      "model_spec": spec.to_json(), "reweighting": spec.reweighting.to_json(),
                      **({"tracking": jsonable(settings.tracking)} if settings.tracking else {}),
                      **({"ranks": parallel.ranks} if parallel.ranks > 1 else {}),  # data-parallel over them
                      "parameters": model.parameter_count(), "started": time.time()})
    recorder = RunRecorder(run, model, CheckpointMeta(spec, DatasetRef.of(data), config.to_dict(),
                                                      model.parameter_count(), run.id))
    closed_fit = shared.fitter(model, spec, data.name, data.fingerprint()) if shared and model.closed_form else None
    return _fit_recorded(model, data, config, callbacks, recorder, reporter, should_stop, None, spec, closed_fit)


def build_callbacks(registry: Registry, names: tuple[str, ...], tracking: dict[str, Any]) -> list[Reporter]:
    """The named callbacks, each configured by the tracking settings its constructor names; a setting no
    callback takes is an error listing the ones they know."""
    used: set[str] = set()
    callbacks = [build_component(registry, "callback", name, tracking, used)[0] for name in names]
    unknown = sorted(set(tracking) - used)
    if unknown:
        known = sorted({p for name in names for p in constructor_params(registry.get("callback", name).cls)})
        raise DiffrecError(f"unknown tracking setting {unknown[0]!r} for callbacks {', '.join(names) or 'none'} "
                           f"(known: {', '.join(known) or 'none'})")
    return callbacks


def _built(registry: Registry, name: str, settings: dict[str, Any], data: InteractionData) -> tuple[Any, ModelSpec]:
    """The model and its spec; a setting its constructor cannot use (a negative size) is a DiffrecError.

    Warnings raised while building are shown only when the build succeeds: a failed build is one error line.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            built = build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)
        except DiffrecError:
            raise
        except (RuntimeError, ValueError, TypeError, ZeroDivisionError, OverflowError, MemoryError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DiffrecError(f"model {name!r} cannot be built with these settings ({first})") from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return built


def _fit_recorded(model: torch.nn.Module, data: InteractionData, config: TrainConfig, callbacks: list[Reporter],
                  recorder: RunRecorder, reporter: Reporter, should_stop: Callable[[], bool],
                  resume: TrainingState | None, spec: ModelSpec,
                  closed_fit: Callable[[sp.csr_matrix], None] | None = None,
                  probe: Probe | None = None) -> TrainOutcome:
    stop_heartbeat = recorder.run.keep_alive()  # a reader tells a live run from a crashed one by it
    try:
        result = fit(model, data, config, _fan_out([recorder, reporter, *callbacks], recorder.run),
                     should_stop=should_stop, resume=resume, closed_fit=closed_fit, probe=probe)
    except KeyboardInterrupt:
        recorder.interrupted()
        _tell_aborted(callbacks, TrainingAborted("interrupted", interrupted=True))
        raise
    except BaseException as exc:
        recorder.failed(exc)
        _tell_aborted(callbacks, TrainingAborted(str(exc) or type(exc).__name__, interrupted=False))
        raise
    finally:
        stop_heartbeat()
    return TrainOutcome(recorder.run, model, data, result, spec, config)


def _tell_aborted(callbacks: list[Reporter], event: TrainingAborted) -> None:
    """Let each callback close its tracker; one that fails while closing must not hide why training ended."""
    for callback in callbacks:
        try:
            callback(event)
        except Exception:  # noqa: BLE001 - the training's own error is the one the user needs to see
            pass


def resume_training(run_or_path: str, registry: Registry, *, home: DataHome, changes: dict[str, Any] | None = None,
                    reporter: Reporter = silent, should_stop: Callable[[], bool] = never) -> TrainOutcome:
    """Continue a run from its latest resumable state, in its own folder. Only ``epochs`` and ``patience``
    may change (recorded in the run's config); any other setting that differs is an error naming it."""
    run = Run(resolve_run(home.runs_dir, run_or_path))
    recorded = run.read_config()
    state = latest_state(run.resume_dir)
    if state is None:
        raise DiffrecError(f"run {run.id} has no resumable state (it stopped before its first resume point, "
                           f"or was trained by a version without them)")
    config, spec = _resumed_settings(recorded, changes or {})
    join(pick_device(config.device)).check_resumable()
    data = home.load(config.dataset)
    if data.fingerprint() != state.info.get("dataset_fingerprint"):
        raise DiffrecError(f"dataset {config.dataset!r} has changed since run {run.id} was trained")
    model = rebuild_recorded(registry, spec, data.n_users, data.n_items, run.path / CONFIG_FILE)
    callbacks = build_callbacks(registry, config.callbacks, recorded.get("tracking", {}))
    pick_device(config.device)
    resumed = [*recorded.get("resumed", []), {"after_epoch": state.epoch, "time": time.time(),
                                               "changes": {k: config.to_dict()[k] for k in (changes or {})}}]
    run.write_config({**recorded, "train": config.to_dict(), "resumed": resumed})
    run.set_status("running")
    recorder = RunRecorder(run, model, CheckpointMeta(spec, DatasetRef.of(data), config.to_dict(),
                                                      model.parameter_count(), run.id), state.info.get("recorder"))
    # the precision decided when the run started, not a new measurement that might decide otherwise
    return _fit_recorded(model, data, config, callbacks, recorder, reporter, should_stop, state, spec,
                         probe=replayed_probe(recorded.get("precision")))


def _coerced(value: Any, like: Any) -> Any:
    try:
        return jsonable(coerce(value, like))
    except DiffrecError:
        return value


def _resumed_settings(recorded: dict[str, Any], changes: dict[str, Any]) -> tuple[TrainConfig, ModelSpec]:
    """The run's own settings with the allowed changes; a DiffrecError lists any other difference."""
    spec = ModelSpec.from_json(recorded["model_spec"], "model_spec", recorded.get("reweighting"))
    train = {k: v for k, v in recorded["train"].items() if k in TrainConfig.__dataclass_fields__}
    wanted = resolve_settings(train, changes)
    differences = [f"{k} {train.get(k)!r} -> {v!r}" for k, v in wanted.train.to_dict().items()
                   if k not in RESUMABLE_CHANGES and v != train.get(k, v)]
    for key, value in wanted.model.items():
        known = {**spec.config, **spec.reweighting.config, "reweighting": spec.reweighting.name,
                 **{k: c.name for k, c in spec.components.items()},
                 **{k: v for c in spec.components.values() for k, v in c.config.items()}}
        if key not in known or _coerced(value, known[key]) != known[key]:
            differences.append(f"{key} {known.get(key)!r} -> {value!r}")
    if differences:
        raise DiffrecError(f"a resumed run keeps its settings (only {', '.join(RESUMABLE_CHANGES)} may change): "
                           + "; ".join(differences))
    return wanted.train, spec
