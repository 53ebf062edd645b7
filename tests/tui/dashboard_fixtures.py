"""Dashboard test data: three hand-written run directories with fixed ids, timestamps and numbers, so
snapshots are stable.

Run A (tiny, finished) and run B (demo, finished, worse validation but better test metrics) differ in
steps and lr; run C (tiny, stopped) has per-step losses still missing for some diffusion steps.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path

import pytest

RUN_A = "20240301-101500-diffrec-tiny-a1a1"
RUN_B = "20240302-091000-diffrec-demo-b2b2"
RUN_C = "20240303-200000-diffrec-tiny-c3c3"
STARTED = {RUN_A: 1709288100.0, RUN_B: 1709370600.0, RUN_C: 1709496000.0}  # UTC 2024-03-01 10:15 etc.


def _metrics(base: float, epoch: int) -> dict[str, float]:
    gain = base * (1 + 0.1 * epoch - 0.012 * epoch * epoch)
    return {"recall@10": round(gain * 0.6, 4), "recall@20": round(gain, 4), "ndcg@10": round(gain * 0.5, 4),
            "ndcg@20": round(gain * 0.55, 4), "users": 40}


def _write(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _train(dataset: str, lr: float, model: str = "diffrec") -> dict:
    return {"model": model, "dataset": dataset, "lr": lr, "weight_decay": 0.0, "batch_size": 64, "epochs": 10,
            "eval_every": 1, "checkpoint_every": 0, "patience": 20, "metric": "recall@20", "ks": [10, 20], "seed": 1,
            "device": "cpu", "precision": "fp32", "callbacks": [], "eval_batch_size": 0}


def _diffrec_spec(steps: int) -> dict:
    """What models/spec.py records for DiffRec: its arguments, the noise schedule's, the reweighting's."""
    return {"name": "diffrec", "plugin": "diffrec", "version": "0.1.0",
            "config": {"dims": [32], "emb_size": 4, "dropout": 0.5, "prediction": "x0", "step_weighting": True,
                       "sampling": "importance", "noising_steps": 0, "history": 10, "normalize_input": False},
            "components": {"schedule": {"name": "linear-var", "plugin": "diffrec", "version": "0.1.0",
                                        "config": {"steps": steps, "noise_scale": 0.005, "noise_min": 0.005,
                                                   "noise_max": 0.01, "first_beta": 1e-05}}}}


NO_REWEIGHTING = {"name": "none", "plugin": "diffrec", "version": "0.1.0", "config": {}}


def write_run(runs_dir: Path, run_id: str, *, dataset: str, steps: int, lr: float, epochs: int, base: float,
              status: str, filled: int | None = None, parameters: int = 12345, test_ratio: float = 0.9,
              model: str = "diffrec", spec: dict | None = None) -> Path:
    started = STARTED.get(run_id, 1709539200.0)
    path = runs_dir / run_id
    path.mkdir(parents=True)
    _write(path / "config.json", {"model": model, "dataset": dataset, "train": _train(dataset, lr, model),
                                  "model_spec": spec or _diffrec_spec(steps), "reweighting": NO_REWEIGHTING,
                                  "parameters": parameters, "started": started})
    evaluations = [{"epoch": e, "valid": _metrics(base, e), "test": _metrics(base * test_ratio, e), "seconds": 0.5,
                    "loss": round(1.0 / e, 4)} for e in range(1, epochs + 1)]
    _write(path / "metrics.json", evaluations)
    losses = [round(1.2 / (1 + 0.1 * i) + 0.05 * (i % 3), 4) for i in range(epochs * 4)]
    per_step = [round(0.1 + 0.05 * t, 4) for t in range(steps)]
    if filled is not None:
        per_step = [v if t < filled else None for t, v in enumerate(per_step)]
    _write(path / "losses.json", {"optimizer_steps": losses, "per_diffusion_step": per_step})
    best = max(evaluations, key=lambda r: r["valid"]["recall@20"])
    _write(path / "final.json", {"best_epoch": best["epoch"], "epochs_run": epochs, "valid": best["valid"],
                                 "test": best["test"], "seconds": 60.0 * epochs + 7, "parameters": parameters})
    _write(path / "status.json", {"status": status, "updated": started + 100, "pid": 1})
    return path


RUN_EASE = "20240305-120000-ease-tiny-e5e5"


def write_ease_run(runs_dir: Path) -> Path:
    """A finished EASE run on tiny (a closed-form baseline: one epoch, no diffusion steps)."""
    spec = {"name": "ease", "plugin": "baselines", "version": "0.1.0", "config": {"reg": 250.0}, "components": {}}
    return write_run(runs_dir, RUN_EASE, dataset="tiny", steps=0, lr=0.001, epochs=1, base=0.33, status="finished",
                     parameters=900, model="ease", spec=spec)


def write_fixture_runs(runs_dir: Path) -> list[str]:
    write_run(runs_dir, RUN_A, dataset="tiny", steps=5, lr=0.001, epochs=6, base=0.30, status="finished")
    write_run(runs_dir, RUN_B, dataset="demo", steps=10, lr=0.0005, epochs=8, base=0.20, status="finished",
              parameters=54321, test_ratio=1.6)
    write_run(runs_dir, RUN_C, dataset="tiny", steps=8, lr=0.001, epochs=2, base=0.25, status="stopped", filled=5)
    return [RUN_A, RUN_B, RUN_C]


# ----- pytest fixtures (imported by the dashboard test modules) ---------------------------------------

@pytest.fixture
def utc(monkeypatch):
    """Start times render in UTC, so snapshots do not depend on the machine's time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def runs_home(tiny_home, utc):
    """The tiny dataset plus runs A (tiny), B (demo) and C (tiny, stopped)."""
    write_fixture_runs(tiny_home.runs_dir)
    return tiny_home


async def settle(pilot) -> None:
    """Let worker threads finish and their messages land."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def async_test(test):
    """Run an async test function with asyncio.run (no pytest async plugin needed)."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def screen_lines(app) -> list[str]:
    """The current screen as plain text, one string per terminal row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def assert_tables_whole(app) -> None:
    """Every header and cell of each table on screen shows in full (none cut at the edge, none with …)."""
    from textual.widgets import DataTable

    text = "\n".join(screen_lines(app))
    assert "…" not in text
    for table in app.screen.query(DataTable):
        for column in table.columns.values():
            assert str(column.label).strip() in text, column.label
        for row in range(table.row_count):
            for cell in table.get_row_at(row):
                assert str(cell).strip() in text, (table.id, str(cell))
