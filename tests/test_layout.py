"""The code's shape, checked: the layering, the size limits and the declared component contract.

These are the design rules a reviewer would otherwise check by hand (docs/architecture.md): core modules
never import the CLI or the dashboard, no module passes ~400 lines nor a function 60, and no component
attribute is read with a ``getattr(..., "name", default)`` fallback instead of being declared.
"""

from __future__ import annotations

import ast
import pathlib
import re

import diffrec_cli

PACKAGE = pathlib.Path(diffrec_cli.__file__).parent
FRONT_ENDS = ("cli", "tui")
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _imported(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_core_never_imports_a_front_end():
    offenders = []
    for path in _modules():
        part = path.relative_to(PACKAGE).parts[0]
        if part in (*FRONT_ENDS, "render", "__main__.py"):
            continue
        for name in _imported(path):
            if re.match(r"diffrec_cli\.(cli|tui)(\.|$)", name):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_render_sits_below_the_front_ends_and_only_the_dashboard_command_opens_tui():
    render = [f"{p.relative_to(PACKAGE)} imports {n}" for p in (PACKAGE / "render").rglob("*.py")
              for n in _imported(p) if re.match(r"diffrec_cli\.(cli|tui)(\.|$)", n)]
    assert render == []
    opens_tui = {str(p.relative_to(PACKAGE)) for p in _modules() if not p.is_relative_to(PACKAGE / "tui")
                 and any(n.startswith("diffrec_cli.tui") for n in _imported(p))}
    assert opens_tui == {"cli/dashboard.py"}


def test_modules_and_functions_stay_small():
    too_long = []
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []


def test_fit_fits_on_one_screen():
    tree = ast.parse((PACKAGE / "training" / "loop.py").read_text(encoding="utf-8"))
    (fit,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit"]
    assert fit.end_lineno - fit.lineno + 1 <= 40


def test_no_contract_is_read_with_a_getattr_default():
    reads = [f"{p.relative_to(PACKAGE)}:{i}: {line.strip()}" for p in _modules()
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r'getattr\(.*, "', line)]
    assert reads == []
