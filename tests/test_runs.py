"""Run folders: written through ``Run``, read back by ``read_run`` whatever state they are in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import diffrec_cli
from diffrec_cli import runs
from diffrec_cli.errors import DiffrecError
from diffrec_cli.runs import RUN_ID, Run, new_run_id, read_run, read_runs, resolve_run

CONFIG = {"model": "diffrec", "dataset": "tiny", "train": {"metric": "ndcg@10", "ks": [10, 20]},
          "parameters": 1234, "started": 1709288100.0}
EVALUATIONS = [
    {"epoch": 1, "valid": {"recall@20": 0.30, "ndcg@10": 0.10}, "test": {"recall@20": 0.20}},
    {"epoch": 2, "valid": {"recall@20": 0.20, "ndcg@10": 0.25}, "test": {"recall@20": 0.15}},
    {"epoch": 3, "valid": {"recall@20": 0.25, "ndcg@10": 0.25}, "test": {"recall@20": 0.40}},
]


def written_run(runs_dir: Path) -> Run:
    run = Run.create(runs_dir, "diffrec", "tiny", CONFIG)
    for evaluation in EVALUATIONS:
        run.add_evaluation(evaluation)
    run.write_losses([0.5, 0.25, 0.125], [0.1, None, 0.3])
    return run


def test_what_run_writes_read_run_reads_back(tmp_path):
    run = written_run(tmp_path)
    record = read_run(run.path)
    assert record.problems == []
    assert (record.id, record.path, record.config) == (run.id, run.path, CONFIG)
    assert (record.model, record.dataset, record.parameters, record.started) == ("diffrec", "tiny", 1234, 1709288100.0)
    assert record.status == runs.RUNNING and record.final is None and record.checkpoint is None
    assert record.evaluations == EVALUATIONS
    assert record.optimizer_losses == [0.5, 0.25, 0.125] and record.step_losses == [0.1, None, 0.3]
    # still training: the best so far is the first evaluation with the highest ndcg@10 (the run's metric)
    assert (record.metric, record.ks) == ("ndcg@10", [10, 20])
    best = record.best()
    assert best.epoch == 2 and best.test == {"recall@20": 0.15}

    run.write_final({"best_epoch": 3, "valid": {"recall@20": 0.9}, "test": {"recall@20": 0.8}})
    run.set_status(runs.STOPPED)
    run.checkpoint_dir.mkdir()
    record = read_run(run.path)
    assert record.status == "stopped" and record.checkpoint == run.path / "checkpoint"
    best = record.best()  # final.json wins over the evaluations once it is there
    assert (best.epoch, best.split("valid"), best.split("test")) == (3, {"recall@20": 0.9}, {"recall@20": 0.8})
    assert json.loads((run.path / "status.json").read_text())["status"] == "stopped"


def test_an_empty_or_absent_folder_is_a_record_of_problems(tmp_path):
    for path in (tmp_path / "just-created", tmp_path / "gone"):
        path.parent.mkdir(exist_ok=True)
        if path.name == "just-created":
            path.mkdir()
        record = read_run(path)
        assert record.problems == ["missing config.json", "missing status.json"]
        assert (record.config, record.status, record.evaluations, record.final) == ({}, None, [], None)
        assert (record.model, record.metric, record.ks) == (None, "recall@20", [10, 20, 50, 100])
        assert record.best() == runs.BestResult(None, {}, {})


def test_every_unreadable_file_is_one_problem_line(tmp_path):
    path = written_run(tmp_path).path
    (path / "config.json").write_text('{"model": "diffrec", "data')  # cut mid-write
    (path / "status.json").write_bytes(b"\xff\xfe\x00")  # not UTF-8
    (path / "metrics.json").unlink()
    (path / "metrics.json").mkdir()  # a folder where a file belongs
    (path / "final.json").write_text("[1, 2]")
    (path / "losses.json").write_text('{"optimizer_steps": {"a": 1}}')
    record = read_run(path)
    assert len(record.problems) == 5
    assert record.problems[0].startswith("config.json: JSONDecodeError: Unterminated string")
    assert record.problems[1].startswith("status.json: UnicodeDecodeError: ")
    assert record.problems[2].startswith("metrics.json: IsADirectoryError: ")
    assert record.problems[3:] == ["final.json: expected a dict, found a list",
                                   "losses.json: optimizer_steps and per_diffusion_step should be lists"]
    assert (record.config, record.status, record.evaluations, record.final) == ({}, None, [], None)
    assert record.optimizer_losses == [] and record.step_losses == []


def test_foreign_values_inside_readable_files_are_skipped(tmp_path):
    path = written_run(tmp_path).path
    (path / "status.json").write_text('{"status": "paused"}')
    (path / "metrics.json").write_text(json.dumps([7, {"epoch": 1, "valid": {"recall@20": "high"}},
                                                   {"epoch": 2, "valid": {"recall@20": 0.4}}]))
    (path / "config.json").write_text(json.dumps({"model": 3, "train": [1], "parameters": True, "started": "noon"}))
    (path / "losses.json").write_text('{"optimizer_steps": [1, "x", NaN, 2.5], "per_diffusion_step": [null, 1e400]}')
    record = read_run(path)
    assert record.problems == ["status.json: unknown status 'paused'"]
    assert record.status is None
    assert record.evaluations == [{"epoch": 1, "valid": {"recall@20": "high"}},
                                  {"epoch": 2, "valid": {"recall@20": 0.4}}]
    assert (record.model, record.parameters, record.started, record.metric) == ("3", None, None, "recall@20")
    assert record.best().epoch == 2  # "high" is not a number, so epoch 1 never competes
    assert record.optimizer_losses == [1.0, 2.5] and record.step_losses == [None, None]


def test_read_config_is_strict_where_read_run_is_tolerant(tmp_path):
    run = written_run(tmp_path)
    assert run.read_config() == CONFIG
    run.write_config({**CONFIG, "resumed": [4]})
    assert run.read_config()["resumed"] == [4]
    (run.path / "config.json").write_text("[]")
    with pytest.raises(DiffrecError, match=rf"^run {run.id}: config.json: expected a dict, found a list$"):
        run.read_config()
    (run.path / "config.json").unlink()
    with pytest.raises(DiffrecError, match=rf"^run {run.id}: missing config.json$"):
        run.read_config()


def test_read_runs_lists_run_folders_in_id_order(tmp_path):
    later, earlier = tmp_path / "20240302-000000-a-b-0000", tmp_path / "20240301-000000-a-b-0000"
    for path in (later, earlier, tmp_path / ".hidden"):
        path.mkdir()
    (tmp_path / "notes.txt").write_text("not a run")
    assert [r.path for r in read_runs(tmp_path)] == [earlier, later]
    assert read_runs(tmp_path / "absent") == []


def test_run_ids_and_their_resolution(tmp_path):
    run_id = new_run_id("ldiffrec", "ml-1m")
    found = RUN_ID.match(run_id)
    assert found and found.group(2) == "ldiffrec-ml-1m" and re.fullmatch(r"\d{8}-\d{6}", found.group(1))
    for name in ("20240301-101500-diffrec-tiny-a1a1", "20240301-101500-diffrec-tiny-b2b2"):
        (tmp_path / name).mkdir()
    (tmp_path / "20240302-file").write_text("a stray file is no run")
    assert resolve_run(tmp_path, "20240301-101500-diffrec-tiny-b") == tmp_path / "20240301-101500-diffrec-tiny-b2b2"
    with pytest.raises(DiffrecError, match="'20240301' matches 2 runs; give more of the id"):
        resolve_run(tmp_path, "20240301")
    with pytest.raises(DiffrecError, match="no run or checkpoint '20240302'"):
        resolve_run(tmp_path, "20240302")


def test_the_run_folder_file_names_are_defined_once():
    """Only runs.py spells the names of a run's files; everyone else imports them (or calls read_run)."""
    package = Path(diffrec_cli.__file__).parent
    names = [runs.CONFIG_FILE, runs.STATUS_FILE, runs.METRICS_FILE, runs.LOSSES_FILE, runs.FINAL_FILE]
    assert names == ["config.json", "status.json", "metrics.json", "losses.json", "final.json"]
    spelled = {(str(p.relative_to(package)), name) for p in package.rglob("*.py") for name in names
               if f'"{name}"' in p.read_text(encoding="utf-8")}
    assert spelled == {("runs.py", name) for name in names}
