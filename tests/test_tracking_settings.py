"""Callback settings: ``callbacks=[a, b]`` without quotes, the ``[tracking]`` table of a config file and
``tracking.KEY`` settings, kept apart from the model's settings and recorded with the run."""

from __future__ import annotations

import json

import pytest

from diffrec_cli.config import read_toml, resolve_settings
from diffrec_cli.errors import DiffrecError


def test_callbacks_read_a_bracketed_list_of_words():
    for text in ("[tensorboard, mlflow]", '["tensorboard","mlflow"]', "tensorboard,mlflow"):
        assert resolve_settings({}, {"callbacks": text}).train.callbacks == ("tensorboard", "mlflow")
    assert resolve_settings({}, {"callbacks": "[tensorboard]"}).train.callbacks == ("tensorboard",)
    with pytest.raises(DiffrecError, match="setting ks: cannot read 'x' as int"):
        resolve_settings({}, {"ks": "[10, x]"})


def test_tracking_table_and_prefixed_settings(tmp_path):
    path = tmp_path / "train.toml"
    path.write_text('lr = 0.002\nsteps = 5\n\n[tracking]\ncallbacks = ["mlflow"]\nmlflow_experiment = "ml-1m"\n')
    settings = resolve_settings(read_toml(path), {"tracking.mlflow_uri": "file:/tmp/x"})
    assert settings.train.callbacks == ("mlflow",) and settings.train.lr == 0.002
    assert settings.model == {"steps": 5}  # the model never sees a tracker's settings
    assert settings.tracking == {"mlflow_experiment": "ml-1m", "mlflow_uri": "file:/tmp/x"}


def test_tracking_settings_without_a_callback_taking_them_fail_before_the_run(demo_home):
    from diffrec_cli.plugins import get_registry
    from diffrec_cli.training.job import train

    settings = resolve_settings({}, {"tracking.log_every": "3", "epochs": "1", "steps": "2", "dims": "[8]"})
    with pytest.raises(DiffrecError, match=r"unknown tracking setting 'log_every' for callbacks none \(known: none\)"):
        train(settings, get_registry(), home=demo_home)
    assert not demo_home.runs_dir.exists() or list(demo_home.runs_dir.iterdir()) == []
    done = train(resolve_settings({}, {"epochs": "1", "steps": "2", "dims": "[8]"}), get_registry(), home=demo_home)
    assert "tracking" not in json.loads((done.run.path / "config.json").read_text())
