"""``diffrec plugins new``: write a ready-to-install plugin package with one component.

The package has a ``pyproject.toml`` declaring the ``diffrec`` entry point, a module registering the
component by name and import path, the component itself (a small working example to edit), a test that runs
diffrec's own contract checks over the installed plugin (``diffrec_cli.contract.check_plugin``), and a README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from diffrec_cli.atomic import atomic_directory
from diffrec_cli.errors import DiffrecError

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Kind:
    registry_kind: str  # the registry's kind, as check_plugin reports it
    hook: str
    module: str  # file of the component, without .py
    suffix: str  # class name suffix
    label: str  # in words
    setting: str  # how a user selects it
    dependencies: str


KINDS = {
    "schedule": Kind("noise_schedule", "register_noise_schedules", "schedule", "Schedule", "noise schedule",
                     "--set schedule=$plugin", '"diffrec", "numpy>=1.24"'),
    "reweighting": Kind("reweighting", "register_reweightings", "reweighting", "Reweighting",
                        "reweighting strategy", "--set reweighting=$plugin", '"diffrec", "numpy>=1.24"'),
    "model": Kind("model", "register_models", "model", "Model", "model", "--model $plugin",
                  '"diffrec", "torch>=2.1,<3"'),
}


def new_plugin(name: str, kind: str, parent: str | Path = ".") -> Path:
    """Write the package ``diffrec-NAME`` under ``parent`` for a ``kind`` component named NAME; its folder."""
    plugin = name.removeprefix("diffrec-")
    if not NAME.match(plugin):
        raise DiffrecError(f"a plugin name is lower-case letters and digits, words joined by '-', got {name!r}")
    if kind not in KINDS:
        raise DiffrecError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    spec = KINDS[kind]
    module = "diffrec_" + plugin.replace("-", "_")
    values = {"plugin": plugin, "dist": f"diffrec-{plugin}", "module": module, "kind": kind,
              "cls": "".join(part.capitalize() for part in plugin.split("-")) + spec.suffix,
              "hook": spec.hook, "file": spec.module, "label": spec.label, "registry_kind": spec.registry_kind,
              "dependencies": spec.dependencies}
    values["setting"] = Template(spec.setting).substitute(values)
    target = Path(parent) / values["dist"]
    if target.exists():
        raise DiffrecError(f"{target} already exists; choose another name or folder")
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{module}/__init__.py": INIT,
        f"{module}/{spec.module}.py": COMPONENTS[kind],
        f"tests/test_{module}.py": TEST + TESTS[kind],
    }
    with atomic_directory(target) as tmp:
        for relative, template in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(template).substitute(values), encoding="utf-8")
    return target


PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A diffrec plugin: the $label '$plugin'."
readme = "README.md"
requires-python = ">=3.10"
dependencies = [$dependencies]

[project.optional-dependencies]
test = ["pytest>=8"]

# diffrec finds plugins through this entry-point group; the name ("$plugin") is the plugin's name in
# `diffrec plugins`, in checkpoints and in DIFFREC_LOAD_PLUGINS.
[project.entry-points.diffrec]
$plugin = "$module"

[tool.setuptools.packages.find]
include = ["$module*"]
'''

README = '''# $dist

A [diffrec](https://github.com/diffrec/diffrec) plugin adding the $label `$plugin`.

```bash
pip install -e '.[test]'      # diffrec finds it through the `diffrec` entry point
diffrec plugins               # lists `$plugin` with the $label `$plugin`
diffrec train $setting        # use it
python -m pytest -q           # diffrec's contract checks over this plugin, and its own tests
```

The component is `$cls` in `$module/$file.py`. Its constructor's keyword arguments are its settings
(`--set key=value`), each with a default; checkpoints store them as JSON, so keep them to numbers, strings,
booleans and lists. `$module/__init__.py` registers it by name and import path, so diffrec imports it
only when it builds one (listing plugins and `--help` stay fast). Writing plugins:
https://github.com/diffrec/diffrec/blob/main/docs/plugins.md
'''

INIT = '''"""$dist: a diffrec plugin registering the $label '$plugin'."""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def $hook(register):
    # by name and import path: diffrec imports the class only when a command builds it
    register("$plugin", "$module.$file:$cls")
'''

SCHEDULE = '''"""A quadratic noise schedule: the square root of β_t grows linearly with t (as DDPM's "quad" schedule)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from diffrec_cli.errors import DiffrecError


@dataclass(frozen=True)
class $cls:
    """β_t = (√β_min + (t − 1)/(T − 1)·(√β_max − √β_min))² for t = 1..T."""

    name = "$plugin"

    steps: int = 40
    beta_min: float = 1e-4
    beta_max: float = 0.02

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 1:
            raise DiffrecError(f"steps must be a positive integer, got {self.steps!r}")
        if not 0.0 < self.beta_min <= self.beta_max < 1.0:
            raise DiffrecError(f"need 0 < beta_min <= beta_max < 1, got {self.beta_min}, {self.beta_max}")

    @property
    def config(self) -> dict:
        return asdict(self)

    def betas(self) -> np.ndarray:
        return np.linspace(np.sqrt(self.beta_min), np.sqrt(self.beta_max), int(self.steps), dtype=np.float64) ** 2
'''

REWEIGHTING = '''"""Recency weights: the newest interaction of a user counts 1, older ones less, down to w_min."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from diffrec_cli.errors import DiffrecError


@dataclass(frozen=True)
class $cls:
    """The m-th (0-based, oldest first) of a user's M interactions weighs w_min + (1 − w_min)·((m + 1)/M)^power."""

    name = "$plugin"

    w_min: float = 0.2
    power: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.w_min <= 1.0:
            raise DiffrecError(f"w_min must lie in (0, 1], got {self.w_min}")
        if not self.power > 0:
            raise DiffrecError(f"power must be positive, got {self.power}")

    @property
    def config(self) -> dict:
        return asdict(self)

    def weights(self, position: np.ndarray, length: np.ndarray) -> np.ndarray:
        fraction = (np.asarray(position, dtype=np.float64) + 1.0) / np.maximum(np.asarray(length, dtype=np.float64), 1.0)
        return (self.w_min + (1.0 - self.w_min) * fraction ** self.power).astype(np.float32)
'''

MODEL = '''"""A denoising autoencoder over a user's interaction row: dropout, one hidden layer, softmax likelihood."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch, Recommender


class $cls(Recommender):
    """Encodes the (normalised, dropped-out) row into ``hidden`` units and decodes a score per item."""

    name = "$plugin"
    search_space = {"lr": [1e-4, 1e-3], "hidden": [100, 200, 600], "dropout": [0.2, 0.5]}
    test_settings = {"hidden": 16}

    def __init__(self, n_users: int, n_items: int, *, hidden: int = 200, dropout: float = 0.5) -> None:
        super().__init__(n_users, n_items)
        if hidden < 1:
            raise DiffrecError(f"hidden must be positive, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise DiffrecError(f"dropout must lie in [0, 1), got {dropout}")
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Linear(n_items, hidden)
        self.decoder = nn.Linear(hidden, n_items)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.tanh(self.encoder(self.drop(F.normalize(x, dim=1)))))

    def loss(self, batch: Batch) -> torch.Tensor:
        return -(F.log_softmax(self(batch.x), dim=1) * batch.x).sum(dim=1).mean()

    @torch.no_grad()
    def scores(self, users: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self(x)
'''

COMPONENTS = {"schedule": SCHEDULE, "reweighting": REWEIGHTING, "model": MODEL}

TEST = '''"""diffrec's own contract checks over this plugin (found through its entry point), then its own tests."""

from diffrec_cli.contract import check_plugin

from $module.$file import $cls


def test_the_plugin_meets_the_diffrec_contract(tmp_path):
    assert check_plugin("$plugin", tmp_path) == ["$registry_kind:$plugin"]

'''

TESTS = {
    "schedule": '''
def test_betas_by_hand():
    # square roots 0.1, 0.2, 0.3
    assert [round(b, 12) for b in $cls(steps=3, beta_min=0.01, beta_max=0.09).betas()] == [0.01, 0.04, 0.09]
''',
    "reweighting": '''
def test_weights_by_hand():
    weights = $cls(w_min=0.2).weights([0, 1, 0], [2, 2, 1])
    assert [round(float(w), 6) for w in weights] == [0.6, 1.0, 1.0]
''',
    "model": '''
def test_scores_every_item():
    import torch

    model = $cls(3, 5, hidden=4).eval()
    assert model.scores(torch.arange(3), torch.eye(3, 5)).shape == (3, 5)
''',
}
