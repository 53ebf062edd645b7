"""Fast start-up: components are registered by name and import path, so loading plugins imports no torch;
``Entry.cls`` imports the class on first access; ``register(Class)`` still works for third-party plugins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from diffrec_cli.hookspecs import hookimpl
from diffrec_cli.models.build import build_model
from diffrec_cli.plugins import load_plugins
from diffrec_cli.registry import ComponentImportError, Registry

FIRST_PARTY = {"DIFFREC_LOAD_PLUGINS": "baselines,example"}  # other installed plugins are theirs to keep light


# Runs the command as the console script does, then reports the top-level packages it imported.
REPORT_IMPORTS = """
import atexit, sys
def report():
    top = sorted({name.split(".")[0] for name in sys.modules})
    sys.stderr.write("IMPORTED " + " ".join(top) + "\\n")
atexit.register(report)
sys.argv = ["diffrec", *sys.argv[1:]]
from diffrec_cli.cli.app import main
main()
"""


def imported_packages(*args: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after ``diffrec ARGS`` ran in a fresh interpreter."""
    result = subprocess.run([sys.executable, "-c", REPORT_IMPORTS, *args], capture_output=True, text=True,
                            env={**os.environ, **FIRST_PARTY}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    *other, last = result.stderr.splitlines()
    assert other == []  # no plugin problems
    assert last.startswith("IMPORTED ")
    return set(last.split()[1:])


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("plugins",), ("train", "--help"), ("runs", "list")])
def test_these_commands_import_no_torch(args, home):
    packages = imported_packages(*args)
    assert {"diffrec_baselines", "diffrec_example"} <= packages  # the plugins did load
    assert "torch" not in packages


def test_entries_registered_by_path_import_their_class_on_first_access():
    plugins = load_plugins()
    entry = plugins.registry.get("model", "ease")
    assert entry.target == "diffrec_baselines.ease:EASE"
    from diffrec_baselines.ease import EASE

    assert entry.cls is EASE and entry.target is EASE  # resolved once, then kept
    for kind, table in plugins.registry.entries.items():
        for name, found in table.items():
            declared = getattr(found.cls, "name", None)  # models and protocol classes declare their name
            if found.plugin in ("diffrec", "baselines", "example") and isinstance(declared, str) and declared:
                assert declared == name, (kind, name)


class ByPath:
    @hookimpl
    def register_noise_schedules(self, register):
        register("lazy-linear", "diffrec_cli.diffusion.schedules:LinearSchedule")
        register("missing", "diffrec_no_such_module.schedules:Nothing")

    @hookimpl
    def register_reweightings(self, register):
        register("bad path", "not a path")


def test_a_path_is_checked_when_registered_and_imported_when_built(tiny):
    plugins = load_plugins(entry_points=False)
    plugins.register_plugin(ByPath(), "bypath", "1.0")
    assert plugins.problems == ["warning: plugin 'bypath' failed in register_reweightings: an import path looks "
                                "like 'package.module:Class', got 'not a path'"]
    from diffrec_cli.diffusion.schedules import LinearSchedule

    assert plugins.registry.get("noise_schedule", "lazy-linear").cls is LinearSchedule
    settings = {"schedule": "missing", "steps": 5, "dims": [8], "emb_size": 4}
    with pytest.raises(ComponentImportError) as error:
        build_model(plugins.registry, "diffrec", settings, n_users=tiny.n_users, n_items=tiny.n_items, data=tiny)
    assert str(error.value) == ("noise schedule 'missing' of plugin 'bypath' cannot be loaded from "
                                "diffrec_no_such_module.schedules:Nothing: ModuleNotFoundError: No module named "
                                "'diffrec_no_such_module'")


def test_registering_a_class_keeps_working():
    from diffrec_cli.diffusion.schedules import LinearSchedule

    registry = Registry()
    register = registry.registrar("noise_schedule", "third", "0.1")
    register(LinearSchedule, name="a")
    register(LinearSchedule, "b")
    register(LinearSchedule)
    assert {n: e.cls for n, e in registry.entries["noise_schedule"].items()} == {
        "a": LinearSchedule, "b": LinearSchedule, LinearSchedule.name: LinearSchedule}
    with pytest.raises(TypeError, match="needs the class or its import path"):
        register("c")


def test_training_imports_neither_the_compiler_nor_polars(home):
    """torch._dynamo (with sympy, +70 MB) came in through the memory estimate's meta-device build and
    polars (+40 MB) through the dataset's raw ids; a training run needs neither."""
    home.ensure_demo()
    packages = imported_packages("train", "--model", "diffrec", "--dataset", "demo", "--epochs", "1",
                                 "--set", "steps=5", "--samples", "0", "--quiet", "--no-live")
    assert "torch" in packages
    assert not {"sympy", "polars"} & packages
