"""Package metadata a package index shows: project URLs, classifiers, ``py.typed``, absolute README links."""

from __future__ import annotations

import re
from pathlib import Path

from diffrec_cli.config import load_toml

ROOT = Path(__file__).resolve().parents[1]
BASE = "https://github.com/diffrec/diffrec"  # the placeholder repository address, the same everywhere
LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def test_project_metadata_names_urls_classifiers_and_python_310_needs():
    project = load_toml(ROOT / "pyproject.toml")["project"]
    assert set(project["urls"]) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    assert all(url.startswith(BASE) for url in project["urls"].values())
    assert "Typing :: Typed" in project["classifiers"]
    assert "Programming Language :: Python :: 3.10" in project["classifiers"]
    assert "tomli>=1.1; python_version < '3.11'" in project["dependencies"]
    assert (ROOT / "diffrec_cli" / "py.typed").is_file()


def test_readme_links_are_absolute_so_they_work_on_a_package_index():
    for readme in (ROOT / "README.md", *sorted((ROOT / "plugins").glob("*/README.md"))):
        targets = [a or b for a, b in LINK.findall(readme.read_text(encoding="utf-8"))]
        assert targets, readme
        relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
        assert relative == [], readme
        assert all(t.startswith(BASE) for t in targets if "github.com" in t), readme
