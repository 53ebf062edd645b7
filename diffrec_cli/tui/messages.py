"""Messages that worker threads post to the UI: small dataclasses, never widgets or open files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from diffrec_cli.tui.records import DatasetInfo, RunDetail, RunSummary


@dataclass
class RunsLoaded(Message):
    rows: list[RunSummary]


@dataclass
class DetailLoaded(Message):
    detail: RunDetail


@dataclass
class RecommendationsReady(Message):
    user: str
    rows: list[tuple[int, str, float]]  # (rank, item, score)
    error: str | None = None


@dataclass
class DatasetsLoaded(Message):
    datasets: list[DatasetInfo]


@dataclass
class TrainingUpdate(Message):
    """One training event (a frozen dataclass from :mod:`diffrec_cli.training.events`)."""

    event: Any


@dataclass
class TrainingDone(Message):
    run_id: str | None
    error: str | None = None
