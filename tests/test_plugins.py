"""Plugins end to end: listing, failures that must not take the CLI down, name conflicts, checkpoints that
demand their plugin in a fresh process, DIFFREC_LOAD_PLUGINS, and lazy loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from conftest import FAST_MODEL, FAST_TRAIN
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.reweighting import NoReweighting
from diffrec_cli.diffusion.schedules import LinearSchedule, LinearVarianceSchedule
from diffrec_cli.errors import PluginMissingError
from diffrec_cli.hookspecs import hookimpl
from diffrec_cli.plugins import get_plugins, load_plugins
from diffrec_cli.training.job import train

runner = CliRunner()


def plugins_json() -> list[dict]:
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``diffrec ARGS`` in a fresh interpreter (nothing imported or registered by this test process)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "diffrec_cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


class Throwaway:
    """A plugin as an object: any object with @hookimpl methods will do."""

    @hookimpl
    def register_noise_schedules(self, register):
        register(LinearSchedule, name="throwaway-linear")

    @hookimpl
    def register_reweightings(self, register):
        register(NoReweighting, name="throwaway-none")


def test_registered_plugin_changes_the_listing_exactly():
    plugins = get_plugins()
    before = plugins_json()
    assert "throwaway" not in [row["name"] for row in before]
    plugins.register_plugin(Throwaway(), "throwaway", "9.9.9")
    try:
        assert plugins_json() == before + [{
            "name": "throwaway", "version": "9.9.9",
            "registers": {"noise_schedule": ["throwaway-linear"], "reweighting": ["throwaway-none"]},
        }]
        assert plugins.registry.get("noise_schedule", "throwaway-linear").cls is LinearSchedule
        table = runner.invoke(app, ["plugins"]).stdout
        assert "throwaway" in table and "9.9.9" in table
    finally:
        plugins.unregister_plugin("throwaway")
    assert plugins_json() == before
    assert plugins.problems == []


# ----- plugins that fail --------------------------------------------------------------------------------
@pytest.fixture
def broken_site(tmp_path):
    """A directory that, on sys.path, holds two installed-looking distributions with ``diffrec`` entry
    points: 'broken' raises when imported, 'hookfail' imports fine but raises inside a hook."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "diffrec_test_broken.py").write_text("raise RuntimeError('boom at import')\n")
    (site / "diffrec_test_hookfail.py").write_text(textwrap.dedent("""
        from diffrec_cli.hookspecs import hookimpl

        @hookimpl
        def register_noise_schedules(register):
            raise ValueError('boom in hook')

        @hookimpl
        def register_reweightings(register):
            from diffrec_cli.data.reweighting import NoReweighting
            register(NoReweighting, name='hookfail-none')
        """))
    for dist, entry in (("diffrec_test_broken", "broken"), ("diffrec_test_hookfail", "hookfail")):
        info = site / f"{dist}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
        (info / "entry_points.txt").write_text(f"[diffrec]\n{entry} = {dist}\n")
    yield site
    sys.modules.pop("diffrec_test_hookfail", None)


BROKEN_WARNING = "warning: plugin 'broken' failed to load: RuntimeError: boom at import"
HOOKFAIL_WARNING = "warning: plugin 'hookfail' failed in register_noise_schedules: boom in hook"


def test_failing_plugins_are_reported_and_isolated(broken_site, demo_home, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    plugins = get_plugins()
    assert BROKEN_WARNING in plugins.problems
    assert HOOKFAIL_WARNING in plugins.problems
    assert len(plugins.problems) == 2
    names = [row["name"] for row in plugins.listing()]
    assert "broken" not in names and {"hookfail", "example", "diffrec"} <= set(names)
    assert plugins.registry.get("reweighting", "hookfail-none").plugin == "hookfail"  # its other hook ran
    settings = [f"--set={k}={v}" for k, v in {**FAST_MODEL, **FAST_TRAIN}.items()]
    result = runner.invoke(app, ["train", "--dataset", "demo", "--quiet", "--no-live", *settings])
    assert result.exit_code == 0, result.output
    assert len(list(demo_home.runs_dir.iterdir())) == 1


def test_failing_plugins_leave_help_working_in_a_fresh_process(broken_site, home):
    result = cli("--help", env={"PYTHONPATH": str(broken_site)})
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "train" in result.stdout
    lines = result.stderr.splitlines()
    assert BROKEN_WARNING in lines and HOOKFAIL_WARNING in lines


# ----- name conflicts ----------------------------------------------------------------------------------
def _schedule_plugin(cls: type, name: str):
    class SchedulePlugin:
        @hookimpl
        def register_noise_schedules(self, register):
            register(cls, name=name)

    return SchedulePlugin()


def test_name_conflict_names_both_providers_and_keeps_the_first():
    plugins = load_plugins(entry_points=False)
    plugins.register_plugin(_schedule_plugin(LinearSchedule, "dup"), "first", "1.0")
    plugins.register_plugin(_schedule_plugin(LinearVarianceSchedule, "dup"), "second", "2.0")
    plugins.register_plugin(_schedule_plugin(LinearSchedule, "linear-var"), "third", "3.0")
    assert plugins.problems == [
        "error: noise schedule 'dup' is registered by both plugin 'first' and plugin 'second'; keeping the first",
        "error: noise schedule 'linear-var' is registered by both plugin 'diffrec' and plugin 'third'; "
        "keeping the first",
    ]
    entry = plugins.registry.get("noise_schedule", "dup")
    assert (entry.cls, entry.plugin, entry.version) == (LinearSchedule, "first", "1.0")
    assert plugins.registry.get("noise_schedule", "linear-var").plugin == "diffrec"
    # a checkpoint that recorded the losing provider is refused rather than given the winner's class
    with pytest.raises(PluginMissingError, match="comes from plugin 'second', but here plugin 'first' provides it"):
        plugins.registry.get("noise_schedule", "dup", wanted_plugin="second")


# ----- checkpoints that need a plugin ------------------------------------------------------------------
def test_checkpoint_with_plugin_schedule_reloads_in_a_fresh_process(tiny_home):
    settings = resolve_settings({}, {**FAST_MODEL, **FAST_TRAIN, "schedule": "cosine", "scale": "0.01"},
                                dataset="tiny")
    outcome = train(settings, get_plugins().registry, home=tiny_home)
    schedule = outcome.spec.components["schedule"]
    assert (schedule.name, schedule.plugin) == ("cosine", "example")
    run_id = outcome.run.id

    result = cli("eval", run_id, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    for split, expected in (("valid", outcome.result.valid), ("test", outcome.result.test)):
        assert metrics[split] == pytest.approx(expected, abs=1e-6)

    result = cli("eval", run_id, "--json", env={"DIFFREC_LOAD_PLUGINS": ""})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "noise schedule 'cosine' comes from plugin 'example', which is not installed or not loaded" \
        in " ".join(result.stderr.split())


# ----- DIFFREC_LOAD_PLUGINS ----------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (None, ["example", "hookfail", "diffrec"]),
    ("", ["diffrec"]),
    ("example", ["example", "diffrec"]),
    (" example , nonexistent ", ["example", "diffrec"]),
    ("hookfail", ["hookfail", "diffrec"]),
])
def test_load_plugins_restricts(value, expected, broken_site, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_site))
    if value is not None:
        monkeypatch.setenv("DIFFREC_LOAD_PLUGINS", value)
    plugins = load_plugins()
    loaded = set(plugins.registry.plugins)
    # unrestricted, whatever else is installed loads too
    assert loaded >= set(expected) if value is None else loaded == set(expected)
    assert (BROKEN_WARNING in plugins.problems) == (value is None)
    assert ("cosine" in plugins.registry.names("noise_schedule")) == ("example" in expected)
    # the built-ins always load; other plugins' models only when allowed
    builtin_models = {n for n, e in plugins.registry.entries["model"].items() if e.plugin == "diffrec"}
    assert "diffrec" in builtin_models
    assert {e.plugin for e in plugins.registry.entries["model"].values()} <= {"diffrec", *loaded}


# ----- lazy loading ------------------------------------------------------------------------------------
def test_importing_the_cli_loads_no_plugins():
    code = ("import sys, json, diffrec_cli.cli.app, diffrec_cli.plugins as p; "
            "print(json.dumps([p._loaded is None, 'diffrec_example' in sys.modules, "
            "'diffrec_cli.builtin' in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, False, False]
