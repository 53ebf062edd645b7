"""Python 3.10 has no ``tomllib``: the one TOML reader falls back to ``tomli`` (a dependency there).

The test hides ``tomllib`` in a fresh interpreter (as 3.10 would lack it) and runs ``train --config``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tomli", reason="tomli is a test dependency (pip install -e .[test])")

HIDE_TOMLLIB = textwrap.dedent("""
    import sys
    sys.modules["tomllib"] = None  # what `import tomllib` meets on Python 3.10
    from diffrec_cli.cli.app import app
    try:
        app(sys.argv[1:], standalone_mode=False)
    finally:
        print("tomli loaded:", "tomli" in sys.modules)
""")


def test_train_reads_a_config_file_without_tomllib(demo_home, tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('dataset = "demo"\n[train]\nepochs = 1\neval_every = 1\nbatch_size = 64\n'
                      "[model]\ndims = [16]\nsteps = 4\nemb_size = 4\n")
    result = subprocess.run(
        [sys.executable, "-c", HIDE_TOMLLIB, "train", "--config", str(config), "--quiet", "--no-live",
         "--samples", "0"],
        capture_output=True, text=True, env={**os.environ, "DIFFREC_LOAD_PLUGINS": ""}, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "tomli loaded: True" in result.stdout
    (run,) = demo_home.runs_dir.iterdir()
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["train"]["epochs"] == 1 and recorded["train"]["batch_size"] == 64
    assert recorded["model_spec"]["config"]["dims"] == [16]
    assert recorded["model_spec"]["components"]["schedule"]["config"]["steps"] == 4
