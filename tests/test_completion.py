"""Shell completion: dataset names, run ids (and short ids), model names, ``--set`` keys and values, all
read without importing torch; the setting keys read from source agree with the real constructors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.config import TRAIN_FIELDS
from diffrec_cli.introspect import class_facts
from diffrec_cli.plugins import load_plugins
from diffrec_cli.registry import constructor_params
from diffrec_cli.runs import Run

IDS = ["20260301-101500-diffrec-tiny-9098", "20260302-101500-ease-tiny-a1b2"]


def complete(line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash would be offered for ``line`` (the last word being completed)."""
    words = line.split(" ")
    result = CliRunner().invoke(app, [], prog_name="diffrec", env={
        "_DIFFREC_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1), **(env or {})})
    assert result.exit_code == 0, result.output
    return [word for word in result.stdout.split("\n") if word]


@pytest.fixture
def filled_home(tiny_home):
    for run_id in IDS:
        (tiny_home.runs_dir / run_id).mkdir(parents=True)
        Run(tiny_home.runs_dir / run_id).set_status("finished")
    (tiny_home.logs_dir / "raw-log").mkdir(parents=True)
    (tiny_home.logs_dir / "raw-log" / "meta.json").write_text("{}")
    return tiny_home


def test_names_from_the_data_home(filled_home):
    assert complete("diffrec train --dataset ") == ["tiny"]
    assert complete("diffrec data info ") == ["raw-log", "tiny"]
    assert complete("diffrec data prepare r") == ["raw-log"]
    assert complete("diffrec eval 2026") == IDS
    assert complete("diffrec runs show 90") == ["9098"]  # the short id the CLI also accepts
    assert complete("diffrec recommend a") == ["a1b2"]
    other = filled_home.root.parent / "other"
    assert complete(f"diffrec train --home {other} --dataset ") == []  # --home is honoured


def test_model_names_and_setting_values(home):
    models = complete("diffrec train --model ")
    assert {"diffrec", "ldiffrec", "tdiffrec", "ltdiffrec", "ease", "multivae"} <= set(models)
    assert complete("diffrec tune --model multi") == ["multidae", "multidae++", "multivae"]
    assert complete("diffrec train --set schedule=") == ["schedule=binomial", "schedule=cosine",
                                                         "schedule=linear", "schedule=linear-var"]
    assert complete("diffrec train --set reweighting=t") == ["reweighting=time-linear"]
    assert complete("diffrec train --set precision=") == ["precision=auto", "precision=fp32", "precision=bf16"]
    assert complete("diffrec train --set metric=ndcg@1") == ["metric=ndcg@10", "metric=ndcg@100"]


def expected_keys(model_cls, schedule_cls, reweighting_cls) -> list[str]:
    keys = [*TRAIN_FIELDS, *constructor_params(model_cls, model_cls.data_args)]
    if schedule_cls is not None:
        keys += ["schedule", *constructor_params(schedule_cls)]
    keys += ["reweighting", *constructor_params(reweighting_cls)]
    return [f"{k}=" for k in dict.fromkeys(keys)]


def test_setting_keys_follow_the_model_and_the_chosen_components(home):
    from diffrec_baselines.neighbourhood import EASE
    from diffrec_example.schedules import CosineSchedule

    from diffrec_cli.data.reweighting import NoReweighting, TimeLinearReweighting
    from diffrec_cli.diffusion.schedules import LinearVarianceSchedule
    from diffrec_cli.models.diffrec import DiffRec
    from diffrec_cli.models.temporal import TDiffRec

    assert complete("diffrec train --set ") == expected_keys(DiffRec, LinearVarianceSchedule, NoReweighting)
    assert complete("diffrec train --model tdiffrec --set ") == expected_keys(TDiffRec, LinearVarianceSchedule,
                                                                             TimeLinearReweighting)
    assert complete("diffrec train --set schedule=cosine --set ") == expected_keys(DiffRec, CosineSchedule,
                                                                                  NoReweighting)
    assert complete("diffrec train --model ease --set ") == expected_keys(EASE, None, NoReweighting)
    assert complete("diffrec train --model ease --set r") == ["reg=", "reweighting="]
    assert complete("diffrec train --set noise_") == ["noise_scale=", "noise_min=", "noise_max="]


def test_reading_the_source_agrees_with_every_registered_class():
    registry = load_plugins().registry
    for kind, table in registry.entries.items():
        for name, entry in table.items():
            if not isinstance(entry.target, str):
                continue
            read = class_facts(entry.target)
            cls = entry.cls
            assert read.settings == list(constructor_params(cls)), (kind, name)
            for attribute, value in read.attributes.items():
                assert getattr(cls, attribute) == value, (kind, name, attribute)


def test_completion_imports_no_torch_and_the_install_options_exist(filled_home, monkeypatch):
    script = ("import atexit, sys\n"
              "atexit.register(lambda: sys.stderr.write('TORCH ' + str('torch' in sys.modules)))\n"
              "sys.argv = ['diffrec']\n"
              "from diffrec_cli.cli.app import main\n"
              "main()\n")
    env = {**os.environ, "_DIFFREC_COMPLETE": "complete_bash", "COMP_WORDS": "diffrec train --set ",
           "COMP_CWORD": "3", "DIFFREC_LOAD_PLUGINS": "baselines,example"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert "steps=" in result.stdout.split() and result.stderr.endswith("TORCH False")
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"}).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    # Typer otherwise asks shellingham for the parent shell, which a test runner started by a non-shell
    # process does not have ("Shell  not supported"); with detection off the option takes the shell's name
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    shown = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="diffrec")
    assert shown.exit_code == 0, (shown.output, shown.exception)
    assert "_DIFFREC_COMPLETE=complete_bash" in shown.stdout
