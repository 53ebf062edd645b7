"""Run folders under ``HOME/runs``: the one module that names their files, writes them and reads them back.

A run folder holds::

    config.json   settings, model spec, parameter count and start time (written once, at creation)
    status.json   running | finished | failed | stopped, with the time, host and process of the last change;
                  a running run's process refreshes the time every HEARTBEAT_SECONDS, so a reader can tell a
                  run whose process died (shown as crashed) from one still training
    metrics.json  one record per evaluation: epoch, valid and test metrics, seconds, loss
    losses.json   loss per optimizer step and mean loss per diffusion step t
    final.json    the metrics at the best epoch, written when training ends
    checkpoint/   the best weights so far (format: ``training/checkpoint.py``)
    resume/       the latest resumable training state (``training/resume.py``)

Every file is replaced atomically, so a reader never sees half a file. Runs are still read while
trainings write them, and a folder may be half created, hold a foreign file or come from another
version: :func:`read_run` keeps whatever it can read and lists the rest as problems, never raising.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from diffrec_cli.atomic import write_json
from diffrec_cli.config import TrainConfig
from diffrec_cli.errors import DiffrecError

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
LOSSES_FILE = "losses.json"
FINAL_FILE = "final.json"
CHECKPOINT_DIR = "checkpoint"
RESUME_DIR = "resume"

RUNNING, FINISHED, FAILED, STOPPED = "running", "finished", "failed", "stopped"
STATUSES = (RUNNING, FINISHED, FAILED, STOPPED)
# never written: what read_run reports for a run marked running whose process is gone
CRASHED = "crashed"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 10 * HEARTBEAT_SECONDS  # no heartbeat for this long: a run on another host has died

# What new_run_id makes: date-time, model, dataset, then four hex digits that keep same-second runs apart.
RUN_ID = re.compile(r"^(\d{8}-\d{6})-(.+)-([0-9a-f]{4})$")


def new_run_id(model: str, dataset: str) -> str:
    """A sortable, unique id (also used for tuning searches): ``20240301-101500-diffrec-ml-1m-a1b2``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model}-{dataset}-{secrets.token_hex(2)}"


@dataclass
class Run:
    """A run folder being written by a training."""

    path: Path
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # what status.json holds, as last written here
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def resume_dir(self) -> Path:
        """Where the latest resumable training state lives (``training/resume.py``)."""
        return self.path / RESUME_DIR

    @classmethod
    def create(cls, runs_dir: Path, model: str, dataset: str, config: dict[str, Any], *, attempts: int = 20) -> "Run":
        """A new run folder, complete from the start: config and status are written in a hidden folder that is
        then renamed into place, so a kill never leaves half a run; an id another process took meanwhile is
        retried with a fresh one."""
        runs_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".run.", suffix=".tmp", dir=runs_dir))
        run = cls(staging)
        try:
            write_json(staging / CONFIG_FILE, config)
            run.set_status(RUNNING)
            for _ in range(attempts):
                path = runs_dir / new_run_id(model, dataset)
                try:
                    # fails on an existing, non-empty folder: another run's
                    if not path.exists():
                        os.rename(staging, path)
                        run.path = path
                        return run
                except OSError:
                    pass
            raise DiffrecError(f"could not find a free run id in {runs_dir} after {attempts} tries")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def read_config(self) -> dict[str, Any]:
        """The settings recorded in config.json; a DiffrecError when it is missing or unreadable."""
        problems: list[str] = []
        config = _load(self.path, CONFIG_FILE, dict, problems, required=True)
        if config is None:
            raise DiffrecError(f"run {self.id}: {problems[0]}")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / CONFIG_FILE, config)

    def set_status(self, status: str, **extra: Any) -> None:
        assert status in STATUSES
        with self._lock:
            self.status = {"status": status, "updated": time.time(), "pid": os.getpid(),
                           "host": socket.gethostname(), **extra}
            write_json(self.path / STATUS_FILE, self.status)

    def heartbeat(self, **progress: Any) -> None:
        """Refresh the time (and any progress fields) of a running run's status; a no-op once it has ended."""
        with self._lock:
            if self.status.get("status") != RUNNING:
                return
            self.status.update(progress, updated=time.time())
            write_json(self.path / STATUS_FILE, self.status)

    def keep_alive(self, every: float = HEARTBEAT_SECONDS) -> Callable[[], None]:
        """Heartbeats from a background thread while training runs (evaluations can be long); returns the
        function that stops them."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every):
                self.heartbeat()

        threading.Thread(target=beat, name=f"heartbeat-{self.id}", daemon=True).start()
        return stop.set

    def add_evaluation(self, record: dict[str, Any]) -> None:
        self.evaluations.append(record)
        write_json(self.path / METRICS_FILE, self.evaluations)

    def write_losses(self, step_losses: list[float], diffusion_step_losses: list[float | None] | None) -> None:
        write_json(self.path / LOSSES_FILE,
                   {"optimizer_steps": step_losses, "per_diffusion_step": diffusion_step_losses})

    def write_final(self, final: dict[str, Any]) -> None:
        write_json(self.path / FINAL_FILE, final)


def as_number(value: Any) -> float | None:
    """A finite int or float as a float; anything else (a string, a bool, NaN, None) is None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class BestResult:
    """The metrics at the best epoch: from final.json, or for a run still training its best evaluation so far."""

    epoch: int | None = None
    valid: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> dict[str, Any]:
        return self.valid if name == "valid" else self.test if name == "test" else {}


@dataclass
class RunRecord:
    """Whatever of one run folder could be read; ``problems`` says, one line each, what could not."""

    id: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # one of STATUSES or CRASHED; None when status.json is missing or unreadable
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    optimizer_losses: list[float] = field(default_factory=list)
    step_losses: list[float | None] = field(default_factory=list)
    final: dict[str, Any] | None = None
    checkpoint: Path | None = None  # the checkpoint folder, once training has written one
    problems: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        return None if self.config.get("model") is None else str(self.config["model"])

    @property
    def dataset(self) -> str | None:
        return None if self.config.get("dataset") is None else str(self.config["dataset"])

    @property
    def started(self) -> float | None:
        return as_number(self.config.get("started"))

    @property
    def parameters(self) -> int | None:
        value = self.config.get("parameters")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def metric(self) -> str:
        """The validation metric the run selected its best epoch on."""
        metric = _object(self.config.get("train")).get("metric")
        return metric if isinstance(metric, str) else TrainConfig.metric

    @property
    def ks(self) -> list[int]:
        ks = _object(self.config.get("train")).get("ks")
        if isinstance(ks, list) and ks and all(isinstance(k, int) and not isinstance(k, bool) for k in ks):
            return ks
        return list(TrainConfig.ks)

    def settings(self) -> dict[str, Any]:
        """The run's settings under the names ``--set`` takes: model and dataset, the model's arguments, each
        component's name and arguments, the reweighting and its arguments, then the trainer's fields. A name
        taken twice keeps the first and qualifies the later one (``schedule.steps``)."""
        spec = _object(self.config.get("model_spec"))
        train = _object(self.config.get("train"))
        sources: list[tuple[str, dict[str, Any]]] = [
            ("", {"model": self.model, "dataset": self.dataset}), ("", _object(spec.get("config")))]
        for part, component in _object(spec.get("components")).items():
            component = _object(component)
            sources += [("", {part: component.get("name")}), (part, _object(component.get("config")))]
        reweighting = _object(self.config.get("reweighting"))
        if reweighting:
            sources += [("", {"reweighting": reweighting.get("name")}),
                        ("reweighting", _object(reweighting.get("config")))]
        sources.append(("train", train))
        out: dict[str, Any] = {}
        for owner, values in sources:
            for name, value in values.items():
                if name not in out:
                    out[name] = value
                elif out[name] != value and owner:
                    out[f"{owner}.{name}"] = value
        return out

    def best_evaluation(self) -> dict[str, Any] | None:
        """The evaluation with the highest validation metric (the first of equals); None before any."""
        best, best_value = None, -math.inf
        for evaluation in self.evaluations:
            value = as_number(_object(evaluation.get("valid")).get(self.metric))
            if value is not None and value > best_value:
                best, best_value = evaluation, value
        return best

    def best(self) -> BestResult:
        source = self.final if self.final is not None else self.best_evaluation()
        if source is None:
            return BestResult()
        epoch = source.get("best_epoch" if self.final is not None else "epoch")
        epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        return BestResult(epoch, _object(source.get("valid")), _object(source.get("test")))


def _load(folder: Path, name: str, kind: type, problems: list[str], *, required: bool = False) -> Any:
    """One JSON file of the run, or None with a line in ``problems`` (a missing optional file is no problem)."""
    try:
        value = json.loads((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            problems.append(f"missing {name}")
        return None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problems.append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(value, kind):
        problems.append(f"{name}: expected a {kind.__name__}, found a {type(value).__name__}")
        return None
    return value


def read_run(path: str | Path) -> RunRecord:
    """Everything readable in one run folder; never raises (see the module docstring)."""
    path = Path(path)
    record = RunRecord(path.name, path)
    problems = record.problems
    record.config = _load(path, CONFIG_FILE, dict, problems, required=True) or {}
    status = _load(path, STATUS_FILE, dict, problems, required=True)
    if status is not None:
        if status.get("status") in STATUSES:
            record.status = CRASHED if status["status"] == RUNNING and process_gone(status) else status["status"]
        else:
            problems.append(f"{STATUS_FILE}: unknown status {status.get('status')!r}")
    record.evaluations = [e for e in _load(path, METRICS_FILE, list, problems) or [] if isinstance(e, dict)]
    record.final = _load(path, FINAL_FILE, dict, problems)
    losses = _load(path, LOSSES_FILE, dict, problems) or {}
    steps, per_step = losses.get("optimizer_steps") or [], losses.get("per_diffusion_step") or []
    if isinstance(steps, list) and isinstance(per_step, list):
        record.optimizer_losses = [v for v in map(as_number, steps) if v is not None]
        record.step_losses = [as_number(v) for v in per_step]
    else:
        problems.append(f"{LOSSES_FILE}: optimizer_steps and per_diffusion_step should be lists")
    checkpoint = path / CHECKPOINT_DIR
    record.checkpoint = checkpoint if checkpoint.is_dir() else None
    return record


def process_gone(status: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process a running status names has died: on this host its pid no longer exists; on another
    host (a shared file system) its heartbeat has stopped for STALE_SECONDS."""
    updated = as_number(status.get("updated"))
    if status.get("host", socket.gethostname()) != socket.gethostname():
        return updated is not None and (now or time.time()) - updated > STALE_SECONDS
    pid = status.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    except OverflowError:
        return True  # not a pid this system can have
    return False


def run_folders(runs_dir: Path) -> list[Path]:
    """The run folders under ``runs_dir``, oldest first; stray files and dot-folders are skipped.

    Ids sort by their second-resolution stamp; runs started within the same second (a search's quick
    trials) are then ordered by the start time their config records, since their random suffixes are not."""
    if not runs_dir.is_dir():
        return []
    folders = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(folders, key=_start_order)


def _start_order(path: Path) -> tuple[str, float, str]:
    stamp = path.name[:15]
    try:
        started = as_number(json.loads((path / CONFIG_FILE).read_text()).get("started"))
    except (OSError, ValueError, AttributeError):
        started = None
    return stamp, started if started is not None else math.inf, path.name


def read_runs(runs_dir: Path) -> list[RunRecord]:
    return [read_run(path) for path in run_folders(runs_dir)]


def matching_ids(ids: list[str], text: str) -> list[str]:
    """The ids that ``text`` names: the id itself, else every id it begins or ends (what the CLI accepts)."""
    if text in ids:
        return [text]
    return [i for i in ids if text and (i.startswith(text) or i.endswith(text))]


def short_id(run_id: str, ids: list[str]) -> str:
    """The shortest name of ``run_id`` to show (the dashboard's id column) that still names only it among
    ``ids``: a generated id's four random hex digits when they are unique, else the whole id."""
    found = RUN_ID.match(run_id)
    if found and matching_ids(ids, found.group(3)) == [run_id]:
        return found.group(3)
    return run_id


def resolve_run(home_runs: Path, run_or_path: str) -> Path:
    """A path as given, or a run id, or any unique prefix or suffix of one, under the data home's runs folder."""
    direct = Path(run_or_path)
    if direct.exists():
        return direct
    candidate = home_runs / run_or_path
    if candidate.exists():
        return candidate
    ids = [p.name for p in run_folders(home_runs)]
    matches = matching_ids(ids, run_or_path)
    if len(matches) == 1:
        return home_runs / matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise DiffrecError(f"{run_or_path!r} matches {len(matches)} runs; give more of the id ({shown})")
    raise DiffrecError(f"no run or checkpoint {run_or_path!r} (looked in {home_runs})")
