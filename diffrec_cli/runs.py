"""Run directories under ``HOME/runs``: config, metrics per evaluation, losses, final metrics, checkpoint.

Every file is replaced atomically, so a dashboard reading a run while it trains never sees half a file.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffrec_cli.atomic import write_json
from diffrec_cli.errors import DiffrecError

STATUSES = ("running", "finished", "failed", "stopped")


def new_run_id(model: str, dataset: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{model}-{dataset}-{secrets.token_hex(2)}"


@dataclass
class Run:
    path: Path
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def resume_dir(self) -> Path:
        """Where the latest resumable training state lives (``training/resume.py``)."""
        return self.path / "resume"

    @classmethod
    def create(cls, runs_dir: Path, model: str, dataset: str, config: dict[str, Any]) -> "Run":
        runs_dir.mkdir(parents=True, exist_ok=True)
        path = runs_dir / new_run_id(model, dataset)
        path.mkdir()
        run = cls(path)
        write_json(path / "config.json", config)
        run.set_status("running")
        return run

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.path / "config.json", config)

    def set_status(self, status: str, **extra: Any) -> None:
        assert status in STATUSES
        write_json(self.path / "status.json", {"status": status, "updated": time.time(), "pid": os.getpid(), **extra})

    def add_evaluation(self, record: dict[str, Any]) -> None:
        self.evaluations.append(record)
        write_json(self.path / "metrics.json", self.evaluations)

    def write_losses(self, step_losses: list[float], diffusion_step_losses: list[float | None] | None) -> None:
        write_json(self.path / "losses.json", {"optimizer_steps": step_losses, "per_diffusion_step": diffusion_step_losses})

    def write_final(self, final: dict[str, Any]) -> None:
        write_json(self.path / "final.json", final)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def resolve_run(home_runs: Path, run_or_path: str) -> Path:
    """A path as given, or a run id (or unique id prefix) under the data home's runs folder."""
    direct = Path(run_or_path)
    if direct.exists():
        return direct
    candidate = home_runs / run_or_path
    if candidate.exists():
        return candidate
    if home_runs.is_dir():
        matches = [p for p in home_runs.iterdir() if p.name.startswith(run_or_path)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DiffrecError(f"{run_or_path!r} matches {len(matches)} runs; give more of the id")
    raise DiffrecError(f"no run or checkpoint {run_or_path!r} (looked in {home_runs})")


def list_runs(home_runs: Path) -> list[dict[str, Any]]:
    """Summaries of every run; unreadable runs come back with an ``error`` field instead of raising."""
    rows = []
    if not home_runs.is_dir():
        return rows
    for path in sorted(home_runs.iterdir()):
        if not path.is_dir() or path.name.startswith("."):
            continue
        row: dict[str, Any] = {"id": path.name, "path": str(path)}
        try:
            row["config"] = read_json(path / "config.json")
            row["status"] = read_json(path / "status.json").get("status")
            final = path / "final.json"
            row["final"] = read_json(final) if final.exists() else None
        except (OSError, json.JSONDecodeError, AttributeError) as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows
